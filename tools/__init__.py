"""Development-time scripts: never imported by mailflow itself."""
