"""Offline code: suites, fitting, the evaluation with its routers, vocabulary build, tag quality."""
