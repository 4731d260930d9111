"""One module per ``audiodata`` command: ``register(subparsers)`` adds its parser, ``run(args) -> int`` runs it.

Modules here import only the standard library at module level: the root parser imports each one to list
the commands, and ``audiodata --help`` must stay fast. Everything heavy is imported inside ``run``.
"""
