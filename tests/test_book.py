"""Checks that tie the package to the book: cited labels exist, included code exists."""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PACKAGE = ROOT / "ddpm_lite"


def book_texts():
    """(path, markdown text) for every page: .md files and the markdown cells of notebooks."""
    for path in sorted(BOOK.glob("*.md")):
        yield path, path.read_text(encoding="utf-8")
    for path in sorted(BOOK.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        yield (
            path,
            "\n".join(
                "".join(c["source"])
                for c in nb["cells"]
                if c["cell_type"] == "markdown"
            ),
        )


def book_labels():
    labels = set()
    for _, text in book_texts():
        labels |= set(re.findall(r"^:label:\s*(\S+)", text, flags=re.M))
        labels |= set(re.findall(r"^\((\S+)\)=\s*$", text, flags=re.M))
    return labels


def cited_labels():
    """Every `eq. X` / `sec. X` named on a `Book:` line of a docstring or comment in ddpm_lite."""
    cited = []
    for path in sorted(PACKAGE.glob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "Book:" in line:
                for label in re.findall(
                    r"(?:eq|sec)\. ([\w-]+)", line.split("Book:", 1)[1]
                ):
                    cited.append((path.name, label))
    return cited


@pytest.mark.parametrize("module,label", cited_labels())
def test_cited_book_label_exists(module, label):
    assert label in book_labels(), (
        f"{module} cites 'Book: {label}', which no page of book/ defines"
    )


def test_package_cites_some_labels():
    assert len(cited_labels()) >= 15


def literalincludes():
    for path, text in book_texts():
        for m in re.finditer(
            r"```\{literalinclude\}\s+(\S+)\n:pyobject:\s*(\S+)", text
        ):
            yield path.name, m.group(1), m.group(2)


@pytest.mark.parametrize("page,target,pyobject", list(literalincludes()))
def test_literalinclude_target_exists(page, target, pyobject):
    source = (BOOK / target).resolve()
    assert source.is_file(), f"{page} includes {target}, which does not exist"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    names = {
        n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))
    }
    assert pyobject.split(".")[0] in names, (
        f"{page} includes {pyobject} from {target}, which has no such object"
    )


@pytest.mark.parametrize("path", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"cell {i} has outputs"
            )


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    entries = set(re.findall(r"(?:file|root):\s*(\S+)", toc))
    pages = {f"book/{p.stem}" for p in BOOK.iterdir() if p.suffix in (".md", ".ipynb")}
    assert entries == pages


CHAPTER_NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


@pytest.mark.parametrize("path", CHAPTER_NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_says_how_to_run_it(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    markdown = "\n".join(
        "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"
    )
    assert (
        ":::{admonition} Run this chapter" in markdown
        and "**CPU:**" in markdown
        and "**GPU:**" in markdown
    )
    assert ":::{admonition} Audience & objectives" in markdown


@pytest.mark.parametrize("path", CHAPTER_NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_says_how_to_install_ddpm_lite_in_a_hidden_first_cell(path):
    first = json.loads(path.read_text(encoding="utf-8"))["cells"][0]
    assert first["cell_type"] == "code" and "remove-cell" in first["metadata"].get(
        "tags", []
    )
    source = "".join(first["source"])
    assert (
        "make venv" in source and "ddpm_lite" in source and "github.com" not in source
    )


@pytest.mark.parametrize("path", CHAPTER_NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_cell_has_alt_text(path):
    for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "plt.show()" in source:
            alt = cell["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")
            assert len(alt) > 20, f"{path.name} cell {i}: a figure without alt text"


def test_the_package_names_no_path_outside_itself():
    # ddpm_lite is installed on its own; ../shared exists only beside this checkout.
    offenders = [
        p.name
        for p in (ROOT / "ddpm_lite").rglob("*")
        if p.is_file()
        and p.suffix in (".py", ".json", ".md")
        and "shared/" in p.read_text(encoding="utf-8")
    ]
    assert not offenders, offenders


def test_library_code_prints_nothing():
    # Notices go through `logging` or `warnings`, progress through tqdm; only the command line prints.
    import ast

    offenders = [
        f"{p.name}:{node.lineno}"
        for p in (ROOT / "ddpm_lite").glob("*.py")
        if p.name != "__main__.py"
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"
    ]
    assert not offenders, offenders


def test_literalinclude_markers_exist():
    """Includes cut by :start-after: / :end-before: (the browser page's JavaScript) find both markers."""
    found = 0
    for path, text in book_texts():
        for m in re.finditer(
            r"```\{literalinclude\}\s+(\S+)\n((?::[\w-]+:.*\n)+)", text
        ):
            options = dict(re.findall(r":([\w-]+):\s*(.*)", m.group(2)))
            source = (BOOK / m.group(1)).read_text(encoding="utf-8")
            for key in ("start-after", "end-before"):
                if key in options:
                    found += 1
                    assert options[key].strip('"') in source, (
                        f"{path.name}: {key} {options[key]} not in {m.group(1)}"
                    )
    assert found >= 4


def test_the_javascript_sampler_mirrors_functions_that_exist():
    """Each `// module.function` heading in the page's sampler names a function of ddpm_lite."""
    import importlib

    source = (ROOT / "_static" / "ddpm" / "sampler.mjs").read_text(encoding="utf-8")
    mirrored = re.findall(
        r"^// (sampling|guidance|diffusion|interpolation|noise|solvers|objectives"
        r"|flow_map)\.(\w+)",
        source,
        flags=re.MULTILINE,
    )
    assert len(mirrored) >= 6, mirrored
    for module, name in mirrored:
        assert hasattr(importlib.import_module(f"ddpm_lite.{module}"), name), (
            f"ddpm_lite.{module}.{name}"
        )
    assert {name for module, name in mirrored if module == "solvers"} >= {
        "solver_timesteps",
        "dpm_solver_update",
        "dpm_solver_trajectory_from",
        "_flow_predict",
        "heun_update",
        "flow_trajectory_from",
    }, mirrored
    assert ("flow_map", "flow_map_trajectory") in mirrored, mirrored


def test_the_browser_page_describes_the_reference_case_that_is_exported():
    from tools import site_models

    case = site_models.REFERENCE
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    text = " ".join((BOOK / "browser.md").read_text(encoding="utf-8").split())
    described = (
        f"samples {words.get(len(case['labels']), len(case['labels']))} digits with guidance, "
        f"{case['num_steps']} DDIM steps and $\\eta = {case['eta']}$"
    )
    assert described in text, described
    flow = site_models.REFERENCE_FLOW
    described = (
        f"samples {words[len(flow['labels'])]} digits with the flow model, guidance "
        f"$w = {flow['scale']:g}$ and Heun's {flow['num_steps']} steps on the straight path"
    )
    assert flow["sampler"] == "heun" and described in text, described
    one, two = site_models.REFERENCE_FLOW_MAP, site_models.REFERENCE_FLOW_MAP_2
    assert one["labels"] == two["labels"] == flow["labels"]  # "the same two digits"
    assert (one["num_steps"], two["num_steps"]) == (1, 2)
    described = (
        f"samples the same {words[len(one['labels'])]} digits at $w = {one['scale']:g}$ "
        "with one flow-map step and again with two"
    )
    assert one["scale"] == two["scale"] == 1 and described in text, described
