"""The discovery document of the Comment Analyzer API v1alpha1, pointing at this server.

Usage: `discovery_document("https://belonging.example.org/")`, served at
`GET /$discovery/rest?version=v1alpha1`, so Google's discovery-based clients work unchanged:

    googleapiclient.discovery.build("commentanalyzer", "v1alpha1", developerKey=KEY,
        discoveryServiceUrl="https://belonging.example.org/$discovery/rest?version=v1alpha1",
        static_discovery=False)

Methods, paths, parameters and schemas follow Google's published document for this API; `rootUrl`
and `baseUrl` are this server, the descriptions say what belonging does.
"""

from __future__ import annotations

from typing import Any

from serving.perspective.attributes import ATTRIBUTES

VERSION = "v1alpha1"
SCORE_TYPES = ["SCORE_TYPE_UNSPECIFIED", "PROBABILITY", "STD_DEV_SCORE", "PERCENTILE", "RAW"]


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def _query(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "location": "query", "description": description, **extra}


PARAMETERS: dict[str, Any] = {
    "$.xgafv": _query("V1 error format.", enum=["1", "2"], enumDescriptions=["v1 error format", "v2 error format"]),
    "access_token": _query("OAuth access token (not used here: send an API key)."),
    "alt": _query("Data format for response.", default="json", enum=["json"], enumDescriptions=["JSON"]),
    "callback": _query("JSONP (ignored)."),
    "fields": _query("Partial response selector (ignored: the whole response is returned)."),
    "key": _query("API key with the `score` scope, from `belong keys create --scopes score`."),
    "oauth_token": _query("OAuth 2.0 token (not used here: send an API key)."),
    "prettyPrint": {**_query("Indented output (ignored)."), "type": "boolean", "default": "true"},
    "quotaUser": _query("Ignored."),
    "uploadType": _query("Ignored."),
    "upload_protocol": _query("Ignored."),
}


def _schemas() -> dict[str, Any]:
    score_type = {"type": "string", "enum": SCORE_TYPES, "description": "Only PROBABILITY is served."}
    attribute_names = ", ".join(sorted(ATTRIBUTES))
    return {
        "AnalyzeCommentRequest": {
            "id": "AnalyzeCommentRequest",
            "type": "object",
            "description": "The comment analysis request message.",
            "properties": {
                "comment": {"$ref": "TextEntry", "description": "The comment to analyze (PLAIN_TEXT)."},
                "context": {"$ref": "Context", "description": "Accepted and ignored."},
                "requestedAttributes": {
                    "type": "object",
                    "additionalProperties": {"$ref": "AttributeParameters"},
                    "description": f"Attributes to score: {attribute_names}.",
                },
                "spanAnnotations": {"type": "boolean", "description": "Score each sentence too."},
                "languages": _strings("Language codes (ISO 639 or BCP-47); detected when empty."),
                "doNotStore": {"type": "boolean", "description": "true: nothing is stored."},
                "clientToken": _string("Echoed in the response."),
                "sessionId": _string("Kept with a stored comment's id."),
                "communityId": _string("The community a stored comment belongs to."),
                "dropUnsupportedAttributes": {
                    "type": "boolean",
                    "description": "Leave out attributes this server does not score instead of failing.",
                },
            },
        },
        "AnalyzeCommentResponse": {
            "id": "AnalyzeCommentResponse",
            "type": "object",
            "description": "The comment analysis response message.",
            "properties": {
                "attributeScores": {
                    "type": "object",
                    "additionalProperties": {"$ref": "AttributeScores"},
                    "description": "Scores per requested attribute (absent below scoreThreshold).",
                },
                "languages": _strings("The request's languages, or the detected one."),
                "detectedLanguages": _strings("The language detected in the text."),
                "clientToken": _string("The request's clientToken."),
            },
        },
        "ArticleAndParentComment": {
            "id": "ArticleAndParentComment",
            "type": "object",
            "description": "Context of a comment on an article.",
            "properties": {"article": {"$ref": "TextEntry"}, "parentComment": {"$ref": "TextEntry"}},
        },
        "AttributeParameters": {
            "id": "AttributeParameters",
            "type": "object",
            "description": "Configurable parameters for attribute scoring.",
            "properties": {
                "scoreThreshold": {"type": "number", "format": "float", "description": "Omit scores below this."},
                "scoreType": score_type,
            },
        },
        "AttributeScores": {
            "id": "AttributeScores",
            "type": "object",
            "description": "Scores of one attribute: per span and for the whole comment.",
            "properties": {
                "spanScores": {"type": "array", "items": {"$ref": "SpanScore"}, "description": "Per-span scores."},
                "summaryScore": {"$ref": "Score", "description": "Score of the comment as a whole."},
            },
        },
        "Context": {
            "id": "Context",
            "type": "object",
            "description": "Give only one of the two fields.",
            "properties": {
                "articleAndParentComment": {"$ref": "ArticleAndParentComment"},
                "entries": {"type": "array", "items": {"$ref": "TextEntry"}},
            },
        },
        "Score": {
            "id": "Score",
            "type": "object",
            "description": "A value and its type.",
            "properties": {"type": score_type, "value": {"type": "number", "format": "float"}},
        },
        "SpanScore": {
            "id": "SpanScore",
            "type": "object",
            "description": "A score for a span of the text; begin/end count UTF-16 code units, end exclusive.",
            "properties": {
                "begin": {"type": "integer", "format": "int32"},
                "end": {"type": "integer", "format": "int32"},
                "score": {"$ref": "Score"},
            },
        },
        "SuggestCommentScoreRequest": {
            "id": "SuggestCommentScoreRequest",
            "type": "object",
            "description": "Suggested scores, kept as a review for `belong feedback export`.",
            "properties": {
                "attributeScores": {"type": "object", "additionalProperties": {"$ref": "AttributeScores"}},
                "clientToken": _string("Echoed in the response."),
                "comment": {"$ref": "TextEntry"},
                "communityId": _string("The community the suggestion is about."),
                "context": {"$ref": "Context"},
                "languages": _strings("Language codes of the comment."),
                "sessionId": _string("Kept with the suggestion."),
            },
        },
        "SuggestCommentScoreResponse": {
            "id": "SuggestCommentScoreResponse",
            "type": "object",
            "description": "The comment score suggestion response message.",
            "properties": {
                "clientToken": _string("The request's clientToken."),
                "detectedLanguages": _strings("The language detected in the text."),
                "requestedLanguages": _strings("The request's languages."),
            },
        },
        "TextEntry": {
            "id": "TextEntry",
            "type": "object",
            "description": "A body of text.",
            "properties": {
                "text": _string("UTF-8 text, at most 20 KB."),
                "type": {"type": "string", "enum": ["TEXT_TYPE_UNSPECIFIED", "PLAIN_TEXT", "HTML"]},
            },
        },
    }


def _method(name: str, request: str, response: str, description: str) -> dict[str, Any]:
    path = f"{VERSION}/comments:{name}"
    return {
        "id": f"commentanalyzer.comments.{name}",
        "description": description,
        "flatPath": path,
        "path": path,
        "httpMethod": "POST",
        "parameterOrder": [],
        "parameters": {},
        "request": {"$ref": request},
        "response": {"$ref": response},
    }


def discovery_document(root_url: str) -> dict[str, Any]:
    """The document with `rootUrl` set to `root_url` (which must end with "/")."""
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": f"commentanalyzer:{VERSION}",
        "name": "commentanalyzer",
        "canonicalName": "Comment Analyzer",
        "version": VERSION,
        "version_module": True,
        "revision": "20260720",
        "title": "Perspective Comment Analyzer API, served by belonging",
        "description": "Perspective-compatible scoring by belonging: WELCOMING, CURIOUS, HOSTILE, and TOXICITY "
        "(from hostile) and CURIOSITY_EXPERIMENTAL (from curious).",
        "protocol": "rest",
        "rootUrl": root_url,
        "baseUrl": root_url,
        "servicePath": "",
        "basePath": "",
        "batchPath": "batch",
        "parameters": PARAMETERS,
        "resources": {
            "comments": {
                "methods": {
                    "analyze": _method(
                        "analyze",
                        "AnalyzeCommentRequest",
                        "AnalyzeCommentResponse",
                        "Analyzes the provided text and returns scores for requested attributes.",
                    ),
                    "suggestscore": _method(
                        "suggestscore",
                        "SuggestCommentScoreRequest",
                        "SuggestCommentScoreResponse",
                        "Suggest comment scores as training data.",
                    ),
                }
            }
        },
        "schemas": _schemas(),
    }
