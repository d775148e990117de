"""Maintainer tools: the reference builder, the release build, the notebook runner and others."""
