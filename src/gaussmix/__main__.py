"""``python -m gaussmix``: the same as the ``gaussmix`` command."""

import sys

from gaussmix.cli import main

if __name__ == "__main__":
    sys.exit(main())
