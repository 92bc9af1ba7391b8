"""Tests of inferd.stats (a package, so its module names cannot clash with other folders')."""
