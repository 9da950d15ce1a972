"""storymedia's command line: the front door for a terminal (the library is ``pipeline``)."""
