"""The console's views (one screen each) and its modals."""
