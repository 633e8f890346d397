"""gicho (기초, "foundations"): the foundations of machine learning as verified software."""

__version__ = "0.1.0"
