"""metaqnn: CNN architecture search with MetaQNN's Q-learning, made cheap with GTN rewards."""

__version__ = "0.1.0"
