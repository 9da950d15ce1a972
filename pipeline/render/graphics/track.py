"""Burned-in graphics (a lower third, subtitles) as ONE timed image track per picture size.

Each cue used to be its own looped PNG input with its own ``overlay`` filter, chained: 2,000 cues
made a graph 2,000 filters deep, past the recursion limit of the library that compiles it
(ffmpeg-python), and ffmpeg kept 2,000 inputs open. Now the picture size gets one input, an ffmpeg
concat script of full-width strips, one per stretch of time in which the graphics shown do not
change, and one ``overlay``: the graph has the same shape for one cue or five thousand.

Within a layer the newest graphic wins: of two overlapping cues the later one is shown (stacked in
the same place they were unreadable). The lower third is a layer of its own, drawn under the
subtitles. Graphics are drawn when their stretch is written, so a few are in memory at a time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from pipeline.render.av.graph import GraphicsTrack, concat_script
from pipeline.render.graphics.text import Graphic

_BEYOND = 3600.0
"""The last stretch lasts this long past the clip's end, then one more image follows: the track
always outlasts the picture, and the overlay (``shortest``) ends with the picture. A track that
ended first let ffmpeg's overlay repeat the picture's last frame while the track still had frames
(5.12 s out of a 5 s clip whose last cue ended at 4.999 s)."""


@dataclass(frozen=True)
class Timed:
    """A graphic shown from ``start`` to ``end`` seconds, drawn by ``draw`` when it is needed."""

    start: float
    end: float
    draw: Callable[[], Graphic]


Shown = tuple[int | None, ...]
"""For each layer, the index of the graphic shown (None: that layer shows nothing)."""


def stretches(layers: Sequence[Sequence[tuple[float, float]]], until: float) -> list[tuple[float, Shown]]:
    """When what is shown changes, and what is shown from then on, up to ``until`` seconds.

    ``layers`` holds each layer's (start, end) spans, taken to the millisecond; in each layer the
    graphic that started last (the later one of equal starts) is shown. Starts at 0; a stretch
    lasts until the next one, the last until the end. Pure and O(n log n).
    """
    layers = [[(round(start, 3), round(end, 3)) for start, end in layer] for layer in layers]   # to the ms
    times = sorted({0.0, *(t for layer in layers for span in layer for t in span if 0 <= t < until)})
    order = [sorted(range(len(layer)), key=layer.__getitem__) for layer in layers]   # by start, then end
    waiting = [0] * len(layers)
    showing: list[list[tuple[float, int, int]]] = [[] for _ in layers]   # heaps of (-start, -index, index)
    out: list[tuple[float, Shown]] = []
    for moment in times:
        shown: list[int | None] = []
        for number, layer in enumerate(layers):
            heap, queue = showing[number], order[number]
            while waiting[number] < len(queue) and layer[queue[waiting[number]]][0] <= moment:
                index = queue[waiting[number]]
                heapq.heappush(heap, (-layer[index][0], -index, index))
                waiting[number] += 1
            while heap and layer[heap[0][2]][1] <= moment:   # ended: gone for good
                heapq.heappop(heap)
            shown.append(heap[0][2] if heap else None)
        if not out or out[-1][1] != tuple(shown):
            out.append((moment, tuple(shown)))
    return out


def _place(canvas: Image.Image, graphic: Graphic, top: int, first: bool) -> None:
    """Draw ``graphic`` on the strip that starts at row ``top`` of the frame, clipped to it. The
    first graphic on a clear strip is copied (the same pixels, and quicker), the others composited."""
    image, x, y = graphic.image, graphic.x, graphic.y - top
    left, upper = max(0, -x), max(0, -y)
    if left or upper:
        image = image.crop((left, upper, image.width, image.height))
    x, y = max(x, 0), max(y, 0)
    right, lower = min(image.width, canvas.width - x), min(image.height, canvas.height - y)
    if right <= 0 or lower <= 0:
        return
    if (right, lower) != image.size:
        image = image.crop((0, 0, right, lower))
    if first:
        canvas.paste(image, (x, y))
    else:
        canvas.alpha_composite(image, dest=(x, y))


def write_track(folder: Path, name: str, frame: tuple[int, int], top: int,
                layers: Sequence[Sequence[Timed]], until: float) -> GraphicsTrack | None:
    """Draw the track into ``folder`` (``name``-prefixed files): a strip of the frame's full width
    from row ``top`` down, for every stretch; None when nothing is ever shown before ``until``."""
    timeline = stretches([[(item.start, item.end) for item in layer] for layer in layers], until)
    if all(index is None for _moment, shown in timeline for index in shown):
        return None
    size = (frame[0], frame[1] - top)

    @lru_cache(maxsize=8)                  # a cue shown again after a shorter one inside it
    def drawn(layer: int, index: int) -> Graphic:
        return layers[layer][index].draw()

    blank = folder / f"{name}-blank.png"
    Image.new("RGBA", size, (0, 0, 0, 0)).save(blank, compress_level=1)
    entries: list[tuple[str, float | None]] = []
    for number, (moment, shown) in enumerate(timeline):
        file = blank
        if any(index is not None for index in shown):
            canvas = Image.new("RGBA", size, (0, 0, 0, 0))
            visible = [(layer, index) for layer, index in enumerate(shown) if index is not None]
            for order, (layer, index) in enumerate(visible):
                _place(canvas, drawn(layer, index), top, first=order == 0)
            file = folder / f"{name}-{number:05d}.png"
            canvas.save(file, compress_level=1)
        following = timeline[number + 1][0] if number + 1 < len(timeline) else until + _BEYOND
        entries.append((file.name, following - moment))
    entries.append((blank.name, None))
    script = folder / f"{name}.ffconcat"
    script.write_text(concat_script(entries), encoding="utf-8")
    return GraphicsTrack(script, 0, top)
