# Sourced by the RAG demo scripts (rag_man_embed.sh, rag_cite_demo.sh): root (the checkout), bin (build/llmforge) and
# vocab (BERT's WordPiece vocabulary from the golden data, $LLMFORGE_GOLDEN), each checked.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/build/llmforge
golden=${LLMFORGE_GOLDEN:-$root/../shared/golden}
vocab=$golden/vocab/ggml-vocab-bert-bge.gguf
[ -x "$bin" ] || { echo "build llmforge first (cmake --build build)" >&2; exit 1; }
[ -f "$vocab" ] || { echo "no BERT vocabulary at $vocab (set LLMFORGE_GOLDEN)" >&2; exit 1; }
