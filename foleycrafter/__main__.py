"""``python -m foleycrafter ...``: the ``foleycrafter`` command, also under a launcher::

accelerate launch -m foleycrafter generate videos/ -o out/
torchrun --nproc_per_node 2 -m foleycrafter generate videos/ -o out/
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
