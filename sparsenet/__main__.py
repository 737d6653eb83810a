import sys

from sparsenet.cli import main

sys.exit(main())
