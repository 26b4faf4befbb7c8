"""`python -m assignments.client ...`"""

import sys

from assignments.client.cli import main

sys.exit(main())
