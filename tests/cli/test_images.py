"""Image paths in a prompt (``pyollama run`` and its REPL), as Ollama's CLI reads them for a vision model;
the model itself created with the CLI from a Modelfile with two FROM lines (the GGUF and its projector)."""
from __future__ import annotations

import base64
import io
import sys

import pytest

from pyollama.cli.images import ImageError, extract
from tests.cli.term import Terminal
from tests.tiny_gguf import checker_pixel, png_image

pytestmark = [pytest.mark.model]
OPTS = {"temperature": 0, "num_predict": 8}


def checker() -> bytes:
    return png_image(32, 32, checker_pixel)


def test_extract_reads_the_paths_ollama_reads(tmp_path):
    pic = checker()
    (tmp_path / "a.png").write_bytes(pic)
    (tmp_path / "my pic.PNG").write_bytes(pic)
    err = io.StringIO()
    text, images = extract(f"compare {tmp_path}/a.png with '{tmp_path}/my pic.PNG' please", err=err)
    assert text == "compare  with  please" and images == [pic, pic]
    text, images = extract(f"and {tmp_path}/my\\ pic.PNG", err=err)             # a shell-escaped space
    assert text == "and" and images == [pic]
    assert err.getvalue().count("Added image") == 3
    text, images = extract("what is /no/such/picture.jpg about?", err=err)
    assert text == "what is /no/such/picture.jpg about?" and images == []      # not a file: stays text
    assert "No image at '/no/such/picture.jpg'" in err.getvalue()
    assert extract("plain text, no paths", err=err) == ("plain text, no paths", [])
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(ImageError, match="fake.png is not a JPEG, PNG or WebP image"):
        extract(f"see {tmp_path}/fake.png", err=err)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="is a directory"):
        extract(f"see {tmp_path}/dir.png", err=err)


@pytest.fixture(scope="module")
def vision(cli_session, cli_models, vision_files, tmp_path_factory):
    """``vision``: created by ``pyollama create -f`` from the tiny llama and a projector (two FROM lines)."""
    work = tmp_path_factory.mktemp("vision-modelfile")
    text, mmproj = vision_files
    (work / "Modelfile").write_text(f"FROM {text}\nFROM {mmproj}\nPARAMETER temperature 0\n"
                                    "PARAMETER num_predict 8\n")
    cli_session.ok("create", "vision", "-f", str(work / "Modelfile"))
    yield "vision:latest"
    cli_session.ok("rm", "vision")


def api_answer(cli_server, prompt: str, image: bytes, *, chat: bool = False) -> str:
    b64 = base64.b64encode(image).decode()
    body = ({"messages": [{"role": "user", "content": prompt, "images": [b64]}]} if chat
            else {"prompt": prompt, "images": [b64]})
    r = cli_server.post("/api/chat" if chat else "/api/generate",
                        json={"model": "vision", "stream": False, "options": OPTS, **body})
    assert r.status_code == 200, r.text
    out = r.json()
    return out["message"]["content"] if chat else out["response"]


def test_run_sends_the_image_in_the_prompt(cli, cli_server, vision, tmp_path):
    shown = cli.ok("show", vision).stdout
    assert "vision" in shown
    (tmp_path / "pic.png").write_bytes(checker())
    r = cli.ok("run", vision, "What is in ./pic.png?")
    assert "Added image './pic.png'" in r.stderr
    assert r.stdout.strip() == api_answer(cli_server, "What is in ?", checker()).strip()
    (tmp_path / "bad.png").write_text("no")
    r = cli("run", vision, "What is in ./bad.png?")
    assert r.returncode == 1 and "Couldn't process image" in r.stderr and "not a JPEG, PNG or WebP" in r.stderr


def test_repl_reads_image_paths(cli, cli_server, vision, tmp_path):
    (tmp_path / "pic.png").write_bytes(checker())
    (tmp_path / "bad.png").write_text("no")
    t = Terminal([sys.executable, "-m", "pyollama", "run", vision], env=cli.env, cwd=tmp_path, cols=200)
    try:
        t.wait_idle()
        t.submit("describe ./pic.png")
        screen = t.transcript()
        assert "Added image './pic.png'" in screen
        shown = screen.split("Added image './pic.png'", 1)[1].split("\n>>> ", 1)[0]
        assert " ".join(shown.split()) == " ".join(api_answer(cli_server, "describe", checker(), chat=True).split())
        t.submit("describe ./bad.png")
        assert "Couldn't process image" in t.transcript()
        t.submit("look at ./missing.png")
        assert "No image at './missing.png'" in t.transcript()
    finally:
        t.close()
