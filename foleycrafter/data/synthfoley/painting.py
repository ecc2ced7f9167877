"""Painting frames: one scene per class, drawn at each frame time (:func:`render_frames`)."""

from __future__ import annotations

import math
from fractions import Fraction

import cv2
import numpy as np

from .classes import CLASS_NAMES, CLASSES, SoundClass
from .motion import CONTACT_DWELL, contact_height, swing_height
from .planning import event_strengths

# ---------------------------------------------------------------------------------------------------
# Drawing: scenes in a 128 x 128 unit space scaled to the frame size.

_SHIFT = 4  # cv2 sub-pixel bits: smooth motion at small sizes


class _Pen:
    def __init__(self, img: np.ndarray, unit: float):
        self.img, self.unit = img, unit

    def _pts(self, pts) -> np.ndarray:
        xy = np.asarray(pts, dtype=np.float64) * self.unit - 0.5
        return np.round(xy * (1 << _SHIFT)).astype(np.int32)

    def _len(self, v: float) -> int:
        return max(1, int(round(v * self.unit * (1 << _SHIFT))))

    def poly(self, pts, color) -> None:
        cv2.fillPoly(self.img, [self._pts(pts)], color, cv2.LINE_AA, _SHIFT)

    def rect(self, x0, y0, x1, y1, color) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color)

    def bar(self, p0, p1, half_width, color) -> None:
        """A rectangle of half-width ``half_width`` along the segment p0 -> p1."""
        (x0, y0), (x1, y1) = p0, p1
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / length * half_width, (x1 - x0) / length * half_width
        self.poly([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], color)

    def circle(self, center, radius, color) -> None:
        cv2.circle(self.img, tuple(self._pts(center)), self._len(radius), color, -1, cv2.LINE_AA, _SHIFT)

    def ellipse(self, center, axes, color, angle=0.0, thickness=-1) -> None:
        axes = (self._len(axes[0]), self._len(axes[1]))
        if thickness > 0:
            thickness = max(1, int(round(thickness * self.unit)))
        cv2.ellipse(
            self.img, tuple(self._pts(center)), axes, angle, 0, 360, color, thickness, cv2.LINE_AA, _SHIFT
        )


def _jitter(rng, color, amount) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _shade(color, factor) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)


def _mix(a, b, w) -> tuple[int, int, int]:
    return tuple(int(round((1 - w) * x + w * y)) for x, y in zip(a, b))


_SKIN = (225, 170, 130)


class _Scene:
    """A static layer (drawn once) and moving objects drawn at each frame time (seconds)."""

    def __init__(
        self, cls: SoundClass, rng: np.random.Generator, size: int, onsets, duration: float, strengths=None
    ):
        self.cls, self.size, self.unit = cls, size, size / 128.0
        self.onsets = np.asarray(onsets, dtype=np.float64)
        # How hard each event is struck (version 2; None: every strike alike, as in version 1).
        self.strengths = None if strengths is None else np.asarray(strengths, dtype=np.float64)
        self.duration = duration
        self.color = _jitter(rng, cls.color, 6)
        self.target = _jitter(rng, cls.target_color, 6)
        background = _jitter(rng, cls.background, 14)
        rows = np.linspace(1.08, 0.92, size)[:, None, None]  # gentle vertical light gradient
        self.static = np.clip(np.asarray(background, np.float64) * rows, 0, 255).astype(np.uint8)
        self.static = np.ascontiguousarray(np.broadcast_to(self.static, (size, size, 3)))
        self.layout(rng)
        self.draw_static(_Pen(self.static, self.unit), rng)

    def layout(self, rng) -> None:
        raise NotImplementedError

    def draw_static(self, pen: _Pen, rng) -> None:
        raise NotImplementedError

    def draw(self, pen: _Pen, t: float) -> None:
        raise NotImplementedError

    def frame(self, t: float) -> np.ndarray:
        img = self.static.copy()
        self.draw(_Pen(img, self.unit), t)
        return img


class _Swinger(_Scene):
    """A tool rotating about a pivot (a hand) whose tip lands on the target at each onset."""

    def angle(self, t: float) -> float:
        return self.rest_angle + self.swing * contact_height(
            t, self.onsets, dwell=CONTACT_DWELL, fall=self.fall, strengths=self.strengths
        )

    def tip(self, angle: float) -> tuple[float, float]:
        px, py = self.pivot
        return px + self.side * self.length * math.cos(angle), py - self.length * math.sin(angle)

    def place(self, contact: tuple[float, float]) -> None:
        """Put the pivot so the tip centre is at ``contact`` when the angle is ``rest_angle``."""
        cx, cy = contact
        a = self.rest_angle
        self.pivot = (cx - self.side * self.length * math.cos(a), cy + self.length * math.sin(a))

    def draw_hand(self, pen: _Pen) -> None:
        px, py = self.pivot
        pen.bar((px, py), (px - self.side * 60, py + 40), 6, self.sleeve)
        pen.circle((px, py), 6.5, _SKIN)


class _HammerScene(_Swinger):
    def layout(self, rng):
        s, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-8, 8), rng.uniform(-6, 6)
        self.plate = (16 + dx, 86 + dy, 88 + dx, 94 + dy)
        self.a, self.b, self.length = 9 * s, 6 * s, 56 * s  # head half-height, half-width; handle
        self.side, self.rest_angle = -1, 0.0  # tip left of the pivot, handle horizontal at contact
        self.swing, self.fall = rng.uniform(0.75, 1.0), rng.uniform(0.18, 0.26)
        self.place((46 + dx + rng.uniform(-4, 4), self.plate[1] - self.a))
        self.sleeve = _jitter(rng, (70, 70, 80), 10)

    def draw_static(self, pen, rng):
        x0, y0, x1, y1 = self.plate
        pen.rect(0, y1 + 6, 128, 128, _shade(self.cls.background, 0.55))  # bench
        pen.rect(x0 + 4, y1, x0 + 10, y1 + 6, (50, 50, 55))
        pen.rect(x1 - 10, y1, x1 - 4, y1 + 6, (50, 50, 55))
        pen.rect(x0, y0, x1, y1, self.target)

    def draw(self, pen, t):
        angle = self.angle(t)
        c = self.tip(angle)
        d = (-self.side * math.cos(angle), math.sin(angle))  # from the head towards the pivot
        n = (self.side * math.sin(angle), math.cos(angle))  # along the head, pointing down at rest
        pen.bar(c, self.pivot, 2.2, (125, 75, 35))
        self.draw_hand(pen)
        a, b = self.a, self.b
        pen.poly(
            [
                (c[0] + sb * b * d[0] + sa * a * n[0], c[1] + sb * b * d[1] + sa * a * n[1])
                for sb, sa in ((1, 1), (1, -1), (-1, -1), (-1, 1))
            ],
            self.color,
        )


class _StickWoodScene(_Swinger):
    def layout(self, rng):
        s, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-8, 8), rng.uniform(-6, 6)
        self.block = (50 + dx - 22 * s, 80 + dy, 50 + dx + 22 * s, 100 + dy)
        self.r, self.length = 4 * s, 58 * s
        self.side, self.rest_angle = -1, -0.3  # tip left of the pivot, pointing down at contact
        self.swing, self.fall = rng.uniform(0.5, 0.75), rng.uniform(0.12, 0.18)
        self.place((50 + dx + rng.uniform(-5, 5), self.block[1] - self.r))
        self.sleeve = _jitter(rng, (190, 190, 200), 10)

    def draw_static(self, pen, rng):
        x0, y0, x1, y1 = self.block
        pen.rect(0, y1, 128, 128, _shade(self.cls.background, 0.6))  # table
        pen.rect(x0, y0, x1, y1, self.target)
        pen.rect(x0 + 4, y0 + 8, x1 - 4, y0 + 11, _shade(self.target, 0.6))  # slot of the block

    def draw(self, pen, t):
        tip = self.tip(self.angle(t))
        pen.bar(tip, self.pivot, 1.6, self.color)
        pen.circle(tip, self.r, self.color)
        self.draw_hand(pen)


class _SpoonGlassScene(_Scene):
    def layout(self, rng):
        s, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-6, 6), rng.uniform(-6, 6)
        self.glass = (48 + dx - 13 * s, 46 + dy, 48 + dx + 13 * s, 100 + dy)
        self.bowl = (7 * s, 4.5 * s)
        self.contact_y = self.glass[1] + rng.uniform(10, 20)
        self.reach, self.fall = rng.uniform(20, 28), rng.uniform(0.1, 0.15)

    def draw_static(self, pen, rng):
        x0, y0, x1, y1 = self.glass
        pen.rect(0, y1, 128, 128, _shade(self.cls.background, 0.6))  # table
        pen.rect(x0, y0, x1, y1, self.target)
        pen.rect(x0 + 3, y0 + 22, x1 - 3, y1 - 3, _mix(self.target, (240, 240, 255), 0.3))  # water inside

    def draw(self, pen, t):
        offset = self.reach * contact_height(
            t, self.onsets, dwell=CONTACT_DWELL, fall=self.fall, strengths=self.strengths
        )
        cx = self.glass[2] + self.bowl[0] + offset
        cy = self.contact_y
        pen.bar((cx, cy), (cx + 48, cy - 10), 1.5, self.color)
        pen.ellipse((cx, cy), self.bowl, self.color)
        pen.circle((cx + 48, cy - 10), 6.5, _SKIN)


class _DrumScene(_Swinger):
    def layout(self, rng):
        s, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-6, 6), rng.uniform(-5, 5)
        self.head = (70 + dx, 78 + dy, 30 * s, 7 * s)  # centre x, y, semi-axes of the drum head
        self.r, self.length = 3.5 * s, 56 * s
        self.side, self.rest_angle = 1, -0.35  # tip right of the pivot
        self.swing, self.fall = rng.uniform(0.6, 0.8), rng.uniform(0.12, 0.18)
        self.place((self.head[0] - 6 + rng.uniform(-4, 4), self.head[1] - self.r))
        self.sleeve = _jitter(rng, (40, 110, 60), 10)

    def draw_static(self, pen, rng):
        hx, hy, ax, ay = self.head
        body = (200, 35, 45)
        pen.rect(0, hy + 40, 128, 128, _shade(self.cls.background, 0.5))  # floor
        pen.ellipse((hx, hy + 36), (ax, ay), _shade(body, 0.7))
        pen.rect(hx - ax, hy, hx + ax, hy + 36, body)
        for k in range(5):  # lugs
            x = hx - ax + (k + 0.5) * 2 * ax / 5
            pen.rect(x - 1.5, hy + 8, x + 1.5, hy + 28, (200, 200, 205))
        pen.ellipse((hx, hy), (ax, ay), self.target)

    def draw(self, pen, t):
        tip = self.tip(self.angle(t))
        pen.bar(tip, self.pivot, 1.6, self.color)
        pen.circle(tip, self.r, self.color)
        self.draw_hand(pen)


class _FootstepsScene(_Scene):
    def layout(self, rng):
        s, dx = rng.uniform(0.9, 1.1), rng.uniform(-8, 8)
        self.ground = 96 + rng.uniform(-5, 5)
        self.feet_x = (44 + dx, 84 + dx)
        self.shoe = (14 * s, 11 * s)  # half-width, height
        self.lift, self.swing = rng.uniform(14, 22), rng.uniform(0.3, 0.4)
        first = int(rng.integers(2))
        feet = [(np.arange(len(self.onsets)) + first) % 2 == f for f in (0, 1)]
        self.steps = [self.onsets[foot] for foot in feet]
        self.step_strengths = [None if self.strengths is None else self.strengths[foot] for foot in feet]
        self.trousers = _jitter(rng, (45, 55, 85), 10)

    def draw_static(self, pen, rng):
        pen.rect(0, self.ground, 128, 128, self.target)
        count = int(180 * (128 - self.ground) / 32)
        xs, ys = rng.uniform(0, 128, count), rng.uniform(self.ground + 2, 128, count)
        for x, y in zip(xs, ys):  # pebbles
            pen.circle((x, y), rng.uniform(0.8, 1.8), _shade(self.target, rng.uniform(0.7, 1.3)))

    def draw(self, pen, t):
        w, h = self.shoe
        for x, steps, strengths in zip(self.feet_x, self.steps, self.step_strengths):
            bottom = self.ground - swing_height(
                t, steps, swing=self.swing, lift=self.lift, strengths=strengths
            )
            pen.rect(x - 8, -2, x + 8, bottom - h + 2, self.trousers)
            pen.rect(x - w, bottom - h, x + w - 4, bottom, self.color)
            pen.ellipse((x + w - 5, bottom - h / 2), (5, h / 2), self.color)


class _ClapScene(_Scene):
    def layout(self, rng):
        s = rng.uniform(0.9, 1.1)
        self.center = (64 + rng.uniform(-6, 6), 60 + rng.uniform(-6, 6))
        self.hand = (7 * s, 15 * s)  # semi-axes
        self.open, self.fall = rng.uniform(16, 26), rng.uniform(0.1, 0.15)
        self.sleeve = _jitter(rng, (50, 90, 210), 10)

    def draw_static(self, pen, rng):
        pen.rect(0, 110, 128, 128, _shade(self.cls.background, 0.6))

    def draw(self, pen, t):
        gap = self.open * contact_height(
            t, self.onsets, dwell=CONTACT_DWELL, fall=self.fall, strengths=self.strengths
        )
        cx, cy = self.center
        hw, hh = self.hand
        for side in (-1, 1):
            hx = cx + side * (gap + hw)
            pen.bar((hx + side * hw * 0.6, cy + hh * 0.6), (hx + side * 70, cy + 55), 8, self.sleeve)
            pen.ellipse((hx, cy), (hw, hh), self.color)
            pen.ellipse(
                (hx + side * hw * 0.3, cy + hh * 0.1), (hw * 0.45, hh * 0.4), self.color, angle=side * 25
            )


class _BallScene(_Scene):
    def layout(self, rng):
        self.r = 9 * rng.uniform(0.85, 1.15)
        self.floor = 100 + rng.uniform(-5, 5)
        self.x = 64 + rng.uniform(-14, 14)
        self.fall = rng.uniform(0.34, 0.42)  # seconds to fall from the top of the frame to the floor
        self.contacts = np.concatenate([[-1.0 - CONTACT_DWELL], self.onsets, [self.duration + 1.0]])
        # The arcs before the first and after the last bounce take those bounces' strengths.
        self.contact_strengths = (
            None
            if self.strengths is None or not len(self.strengths)
            else np.concatenate([self.strengths[:1], self.strengths, self.strengths[-1:]])
        )

    def draw_static(self, pen, rng):
        pen.rect(0, self.floor, 128, 128, self.target)
        pen.rect(0, self.floor, 128, self.floor + 1.5, _shade(self.target, 1.2))

    def draw(self, pen, t):
        h = contact_height(
            t, self.contacts, dwell=CONTACT_DWELL, fall=self.fall, rest=None, strengths=self.contact_strengths
        )
        r = self.r
        if h == 0.0:  # squash while touching the floor
            i = int(np.searchsorted(self.contacts, t, side="right")) - 1
            q = 0.22 * math.sin(math.pi * (t - self.contacts[i]) / CONTACT_DWELL)
            pen.ellipse((self.x, self.floor - r * (1 - q)), (r * (1 + q), r * (1 - q)), self.color)
            return
        bottom = self.floor - h * (self.floor + 2 * r)
        if bottom > -1:
            pen.circle((self.x, bottom - r), r, self.color)
            pen.ellipse(
                (self.x - r * 0.35, bottom - r * 1.4),
                (r * 0.3, r * 0.2),
                _mix(self.color, (255, 255, 255), 0.4),
            )


class _StoneWaterScene(_Scene):
    def layout(self, rng):
        self.surface = 84 + rng.uniform(-6, 6)
        self.fall = rng.uniform(0.4, 0.5)
        self.stones = []
        strengths = np.ones(len(self.onsets)) if self.strengths is None else self.strengths
        for strength in strengths:
            # A louder splash is a bigger stone throwing its droplets faster.
            r = rng.uniform(5, 8) * (0.4 + 0.6 * strength)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
            radii = r * rng.uniform(0.8, 1.15, 9)
            shape = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
            shape[:, 1] -= shape[:, 1].max()  # origin at the lowest point
            drops = [
                (strength * rng.uniform(-35, 35), strength * rng.uniform(-110, -60))
                for _ in range(int(rng.integers(4, 7)))
            ]
            self.stones.append((rng.uniform(22, 106), shape, drops))

    def draw_static(self, pen, rng):
        pen.rect(
            0, self.surface - 14, 128, self.surface, _mix(self.cls.background, (60, 110, 60), 0.5)
        )  # far shore

    def draw(self, pen, t):
        water = self.target
        gravity = 400.0  # units / s^2 for droplets
        for onset, (x, shape, _) in zip(self.onsets, self.stones):
            tau = t - onset
            if tau < -self.fall or tau > 1.5:
                continue
            travel = self.surface + 20
            if tau < 0:  # free fall from above the frame, reaching the surface at the onset
                bottom = self.surface - travel * (tau / self.fall) ** 2
                color = self.color
            else:  # water brakes it hard, then it sinks slowly and fades into the water
                speed = 2 * travel / self.fall
                bottom = self.surface + speed * 0.02 * (1 - math.exp(-tau / 0.02)) + 12 * tau
                color = _mix(self.color, water, min(1.0, 0.3 + tau / 1.5))
            pen.poly(shape + (x, bottom), color)
        img = pen.img
        row = int(round(self.surface * self.unit))
        img[row:] = (0.25 * img[row:] + 0.75 * np.asarray(water, np.float64)).astype(np.uint8)
        pen.rect(0, self.surface, 128, self.surface + 1.2, _mix(water, (255, 255, 255), 0.35))
        for onset, (x, _, drops) in zip(self.onsets, self.stones):
            tau = t - onset
            if 0 <= tau < 0.9:  # ripples spreading on the surface
                for lag in (0.0, 0.25):
                    if tau > lag:
                        radius = 4 + 45 * (tau - lag)
                        light = _mix(water, (230, 240, 255), max(0.0, 0.8 - (tau - lag)))
                        pen.ellipse((x, self.surface + 1.5), (radius, radius * 0.18), light, thickness=1)
            if 0 <= tau < 0.5:  # droplets thrown up by the splash
                for vx, vy in drops:
                    y = self.surface + vy * tau + 0.5 * gravity * tau * tau
                    if y < self.surface:
                        pen.circle((x + vx * tau, y), 1.3, (235, 245, 255))


_SCENES: dict[str, type[_Scene]] = {
    "hammer_metal": _HammerScene,
    "stick_wood": _StickWoodScene,
    "spoon_glass": _SpoonGlassScene,
    "drum": _DrumScene,
    "footsteps_gravel": _FootstepsScene,
    "clap": _ClapScene,
    "ball_bounce": _BallScene,
    "stone_water": _StoneWaterScene,
}


def render_frames(record: dict, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    """The pictures of a planned clip.

    Args:
        record: from :func:`plan_clip` (uses ``class_name``, ``onsets``, ``duration``, ``fps``,
            ``num_frames``, ``width``, and version 2's ``event_levels_db``: see :func:`event_strengths`).
        rng: the random stream (consumed): scene jitter and per-frame pixel noise.
        noise: standard deviation of the per-pixel Gaussian noise, in 8-bit levels.

    Returns:
        uint8 RGB ``(num_frames, size, size, 3)``; frame ``k`` shows time ``k / fps`` seconds.
    """
    rate = Fraction(record["fps_fraction"])
    cls = CLASSES[CLASS_NAMES.index(record["class_name"])]
    size = int(record["width"])
    scene = _SCENES[cls.name](cls, rng, size, record["onsets"], record["duration"], event_strengths(record))
    frames = np.empty((record["num_frames"], size, size, 3), np.uint8)
    for k in range(record["num_frames"]):
        img = scene.frame(float(Fraction(k) / rate)).astype(np.float32)
        img += rng.standard_normal(img.shape, dtype=np.float32) * noise
        frames[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames
