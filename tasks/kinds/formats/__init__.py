"""Export formats: COCO JSON for image kinds, CoNLL BIO and spaCy JSON for ner, JSONL for all."""
