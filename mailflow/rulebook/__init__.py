"""The rules files: `rules/*.toml` read into values, for coordinators to edit.

Every error names the file, the section and the key. Nothing here touches the store.
"""
