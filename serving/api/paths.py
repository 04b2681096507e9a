"""The `{name:id}` path convertor: one id in a URL path, "/" and every other character included.

Starlette's `path` convertor stops at a newline (its regex is `.*`), so an id holding one would miss
the route and answer 404 instead of the 422 that names the bad character. Import this module before
declaring a route with `{name:id}`.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class IdConvertor(Convertor[str]):
    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())
