"""Stand-in for pip's get-pip.py, which ansible-test downloads from a host this machine cannot reach.

ansible-test runs it as `python get_pip_X_Y.py [pip options] pip==X.Y ...` inside an empty venv.
We import pip from the controller venv's own installation and let it install the requested
versions from PyPI, which is what get-pip.py does with its embedded copy.
"""

import sys

PIP_SITE = "@PIP_SITE@"  # filled in by tools/sanity.sh: ansible-test passes no environment through
OWN_FLAGS = {"--no-setuptools", "--no-wheel"}  # get-pip.py's flags, not pip's

sys.path.insert(0, PIP_SITE)
from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(["install", *(a for a in sys.argv[1:] if a not in OWN_FLAGS)]))
