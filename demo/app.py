"""FoleyCrafter's Gradio demo page.

    python demo/app.py [--model FOLDER] [--host 127.0.0.1] [--port 7860] [--share]
                       [--max-upload-mb 200] [--max-seconds 60] [--no-examples]

The same as ``foleycrafter demo``; the app itself is :mod:`foleycrafter.demo`, so that the installed
command works without this folder. Needs the demo extra: ``pip install -c constraints.txt -e ".[demo]"``.
"""

import sys
from pathlib import Path

try:
    from foleycrafter.demo import main
except ImportError:
    # A checkout that was not pip-installed: use the package next to this folder.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from foleycrafter.demo import main

if __name__ == "__main__":
    sys.exit(main(prog="python demo/app.py"))
