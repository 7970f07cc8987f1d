"""msgp's version, in a module of its own: the files msgp writes record it, and the build reads it
from here without importing the package."""
__version__ = "0.1.0"
