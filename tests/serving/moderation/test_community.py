"""The community page: the belonging index chart (server-side SVG), tag rates, newcomers, top threads."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from serving.moderation.charts import index_chart
from serving.moderation.queries import Point
from serving.storage.analytics import TagCounts


def counts(n: int, warm: int, hostile: int) -> TagCounts:
    return TagCounts(count=n, tags={"welcoming": warm, "curious": 0, "hostile": hostile}, welcoming_or_curious=warm)


def test_community_page_draws_the_chart_and_the_numbers(moderator):
    page = moderator.get("/moderation/community?id=c1&days=7")
    assert page.status_code == 200
    assert '<svg class="chart"' in page.text
    lines = re.findall(r'<polyline class="line" points="([^"]+)"', page.text)
    dots = re.findall(r'<circle class="dot"[^>]*><title>([^<]+)</title>', page.text)
    # c1 has comments on 2025-02-01 (5: 1 welcoming, 3 hostile) and 2025-02-02 (1 welcoming)
    assert dots == [
        "2025-02-01: index -0.40 from 5 comments (1 welcoming or curious, 3 hostile)",
        "2025-02-02: index +1.00 from 1 comments (1 welcoming or curious, 0 hostile)",
    ]
    assert len(lines) == 1 and len(lines[0].split()) == 2
    assert "6 comments in the range." in page.text
    # newbie, troll, kind and troll2 are new; newbie's first comment got 2 replies, troll's got 1
    reception = " ".join(page.text.split("Newcomer reception</h2>")[1].split("<table")[0].split())
    assert reception == (
        "<p><strong>4</strong> newcomers made their first comment in the range; <strong>2</strong> "
        "(50%) got a reply within 24 hours (3 replies in all).</p>"
    )
    assert "Top flagged threads" in page.text and ">t1</bdi>" in page.text
    assert 'aria-current="page">7 days' in page.text


def test_community_page_unknown_is_404(moderator):
    response = moderator.get("/moderation/community?id=nope")
    assert response.status_code == 404
    assert "No stored comments in this community." in response.text


def test_chart_breaks_the_line_at_empty_buckets():
    start = datetime(2025, 1, 1)
    points = [
        Point(start + timedelta(days=i), c)
        for i, c in enumerate([counts(4, 4, 0), counts(2, 0, 2), TagCounts(), counts(1, 1, 0), counts(2, 1, 1)])
    ]
    chart = index_chart(points, bucket="day")
    assert len(chart.lines) == 2 and len(chart.dots) == 4
    assert [d.y for d in chart.dots][:2] == [chart.top, chart.bottom]  # +1 at the top, -1 at the bottom
    assert chart.dots[3].y == chart.zero_y  # index 0
    assert len(chart.bars) == 4 and max(b.height for b in chart.bars) == round((chart.bottom - chart.top) * 0.35, 1)
    assert [t.label for t in chart.x_ticks] == [
        "2025-01-01",
        "2025-01-02",
        "2025-01-03",
        "2025-01-04",
        "2025-01-05",
    ]


def test_chart_of_nothing_is_empty():
    chart = index_chart([Point(datetime(2025, 1, 1), TagCounts())], bucket="hour")
    assert chart.empty and chart.lines == [] and chart.dots == []
