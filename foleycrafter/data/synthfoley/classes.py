"""The SynthFoley class table: what each class shows and sounds like, and its captions.

The synthesisers (:mod:`.synthesis`) and scenes (:mod:`.painting`) are looked up by class name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SoundClass:
    """One SynthFoley class.

    Attributes:
        name: identifier, e.g. ``"hammer_metal"``.
        captions: caption templates; a clip uses one, chosen by its seed.
        color: RGB of the moving object's contact part (hammer head, ball, shoe, ...).
        target_color: RGB of the surface it contacts (plate, floor, gravel, ...).
        background: base RGB of the backdrop (jittered per clip).
        description: what is seen and heard.
    """

    name: str
    captions: tuple[str, ...]
    color: tuple[int, int, int]
    target_color: tuple[int, int, int]
    background: tuple[int, int, int]
    description: str


CLASSES: tuple[SoundClass, ...] = (
    SoundClass(
        "hammer_metal",
        (
            "a hammer strikes a metal plate",
            "hammering on a sheet of metal",
            "a metal plate is hit with a hammer",
            "clanging hammer blows on metal",
        ),
        color=(40, 70, 210),
        target_color=(175, 180, 190),
        background=(70, 55, 45),
        description="a hammer with a blue head swings down onto a grey plate; bright inharmonic ringing",
    ),
    SoundClass(
        "stick_wood",
        (
            "a stick knocks on a wood block",
            "tapping a wooden block with a stick",
            "wooden knocks of a stick on a block",
        ),
        color=(235, 210, 50),
        target_color=(150, 80, 30),
        background=(35, 75, 65),
        description="a yellow stick taps a brown wood block; short hollow knock",
    ),
    SoundClass(
        "spoon_glass",
        (
            "a spoon taps a glass",
            "clinking a glass with a spoon",
            "a spoon rings against a drinking glass",
        ),
        color=(225, 225, 235),
        target_color=(110, 200, 225),
        background=(55, 35, 75),
        description="a silver spoon swings sideways against a cyan glass; high ringing with slow beats",
    ),
    SoundClass(
        "drum",
        (
            "a drumstick hits a drum",
            "someone plays a drum",
            "drum beats from a stick on a drum",
        ),
        color=(245, 150, 40),
        target_color=(235, 228, 205),
        background=(30, 30, 45),
        description="an orange drumstick hits the beige head of a red drum; membrane modes with a pitch drop",
    ),
    SoundClass(
        "footsteps_gravel",
        (
            "footsteps on gravel",
            "a person walks on gravel",
            "feet crunching on gravel",
        ),
        color=(160, 40, 175),
        target_color=(125, 115, 100),
        background=(110, 150, 185),
        description="two purple shoes step in place on speckled gravel; granular crunch",
    ),
    SoundClass(
        "clap",
        (
            "hands clapping",
            "a person claps their hands",
            "a pair of hands clapping",
        ),
        color=(235, 175, 135),
        target_color=(235, 175, 135),
        background=(40, 70, 100),
        description="two hands in blue sleeves meet in the middle; short bright burst",
    ),
    SoundClass(
        "ball_bounce",
        (
            "a ball bounces on the floor",
            "a bouncing ball hits the ground",
            "a rubber ball bouncing",
        ),
        color=(250, 120, 10),
        target_color=(55, 150, 70),
        background=(85, 85, 100),
        description="an orange ball falls and bounces on a green floor; low thump and a click",
    ),
    SoundClass(
        "stone_water",
        (
            "a stone drops into water",
            "stones splashing into a pond",
            "a rock plops into water",
        ),
        color=(90, 75, 65),
        target_color=(30, 90, 170),
        background=(170, 200, 225),
        description="dark stones fall into blue water with ripples; splash and rising bubbles",
    ),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
