"""mailflow: a peer-mentoring program run entirely by email."""

__version__ = "0.1.0"
