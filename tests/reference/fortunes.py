"""Real English text for the end-to-end tests: Debian's fortunes (installed by scripts/setup.sh), and the first two
steps every training test starts from — a BPE tokenizer trained on it and the text prepared into token shards."""
import os
import subprocess

ALL = ("fortunes", "literature", "science", "wisdom", "people", "work", "humorists")


def write_text(path, names=ALL):
    """Writes the named fortune files to PATH, one fortune per paragraph."""
    with open(path, "w") as f:
        for name in names:
            p = "/usr/share/games/fortunes/" + name
            if os.path.exists(p):
                f.write(open(p, encoding="utf-8", errors="replace").read().replace("\n%\n", "\n\n"))
    return path


def tokenizer_and_data(bin_, tmp, vocab_size, names=ALL):
    """text.txt, tok.json (`tokenizer train`) and data/ (`prepare`, 5% validation) in TMP; returns their paths."""
    text = write_text(os.path.join(tmp, "text.txt"), names)
    tok, data = os.path.join(tmp, "tok.json"), os.path.join(tmp, "data")
    subprocess.run([bin_, "tokenizer", "train", "--input", text, "--vocab-size", str(vocab_size), "-o", tok, "-q"],
                   check=True, capture_output=True)
    subprocess.run([bin_, "prepare", "--input", text, "--tokenizer", tok, "-o", data, "--val-fraction", "0.05", "-q"],
                   check=True, capture_output=True)
    return text, tok, data
