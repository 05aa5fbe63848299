"""Helpers shared by the test folders: real external servers started on free ports."""
