"""Pure DynaMO math: tensor functions that import only torch, numpy and the standard library.

No config objects, no I/O, no distributed calls, no logging. Each function cites its equation of the DynaMO paper
(arXiv 2602.19208) in its docstring; ``docs/paper_map.md`` is the index.
"""
