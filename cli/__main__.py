"""`python -m imdb_sentiment.cli`: the same as the `imdb-pipeline` command."""

import sys

from .main import main

sys.exit(main())
