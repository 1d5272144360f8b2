"""The ledger: every generation with its tokens and cost, and the keys that made them.

``schema`` holds the tables and the ordered migrations, ``db`` opens engines, ``writer``
is the single batched writer off the response path, ``keys`` and ``queries`` read and
change keys and generations.
"""
