"""MkDocs hook (mkdocs.yml ``hooks:``): put the repository's Markdown outside docs/ into the site.

The docs pages link to REPRODUCTION.md, reproduction/PREREGISTRATION.md, ... with relative links
that also work on the repository's file view (``../REPRODUCTION.md``). MkDocs only knows files
under docs/, so ``mkdocs build --strict`` would call those links broken; here each such file
(and the images it shows) is added to the site under ``repo/<path>``, keeping its
``../<path>`` source name so the links resolve. Not part of the package.
"""
from __future__ import annotations

import posixpath

from mkdocs.structure.files import File, InclusionLevel

#: repository files (relative to the root) served under repo/ in the site
REPO_FILES = (
    "REPRODUCTION.md",
    "reproduction/PREREGISTRATION.md",
    "reproduction/verdict_numbers.md",
    "reproduction/study/README.md",
    "benchmarks/RESULTS.md",
    "reproduction/study/figures/fig1_large_params.png",
    "reproduction/study/figures/fig2_many_layers.png",
    "reproduction/study/figures/fig3_combined.png",
    "reproduction/study/figures/fig4_logistic.png",
)


def on_files(files, config):
    for path in REPO_FILES:
        if path.endswith(".md"):
            stem = path[: -len(".md")]
            dest = posixpath.join("repo", stem, "index.html") if config.use_directory_urls \
                else posixpath.join("repo", stem + ".html")
        else:
            dest = posixpath.join("repo", path)
        files.append(File("../" + path, src_dir=config.docs_dir, dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls, dest_uri=dest, inclusion=InclusionLevel.NOT_IN_NAV))
    return files
