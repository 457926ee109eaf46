"""The pyollama command line and REPL, driven through subprocesses and a pseudo-terminal."""
