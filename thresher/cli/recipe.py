"""`thresher recipe schema|reference`: the recipe format, from the models that load recipes.

`schema` is the JSON Schema of a recipe, for editors (yaml-language-server, VS Code, JetBrains);
`reference` is the Markdown reference committed as docs/recipe.md. Both are printed as plain text,
never through rich: a terminal's width must not wrap what a file or an editor reads back.
"""

from __future__ import annotations

import json
import sys

import typer

app = typer.Typer(
    name="recipe",
    help="The recipe format: JSON Schema for editors, Markdown reference (docs/recipe.md).",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a recipe (save it and point your editor at it, e.g. a first line
    `# yaml-language-server: $schema=recipe.schema.json`)."""
    from thresher.recipe_reference import recipe_json_schema

    sys.stdout.write(json.dumps(recipe_json_schema(), indent=2) + "\n")


@app.command()
def reference() -> None:
    """Print the Markdown reference of every recipe key (type, default, constraints, description)
    and of every scorer's and judge's parameters: docs/recipe.md is this output."""
    from thresher.recipe_reference import reference_markdown

    sys.stdout.write(reference_markdown())
