"""``python -m adjoint_sampling.cli ...``: the ``adjoint-sampling`` command (torchrun uses this)."""

import sys

from adjoint_sampling.cli.entry import main

sys.exit(main())
