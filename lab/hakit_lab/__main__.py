"""`python -m hakit_lab`: the hakit-lab command."""

import sys

from .cli import main

sys.exit(main())
