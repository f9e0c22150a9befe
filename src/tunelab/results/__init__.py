"""The only writer of files into run and study directories; every write is atomic."""
