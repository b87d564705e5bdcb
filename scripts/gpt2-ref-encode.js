#!/usr/bin/env node
// The reference GPT-2 encoder (npm gpt-3-encoder's Encoder.js, unmodified) over a text
// file: prints one token id per line. Used by the agreement tests (tests/test_bpe.c) and
// scripts/bpe-agree.sh.  usage: node scripts/gpt2-ref-encode.js ENCODER_JS TEXT_FILE
//
// The file is read as UTF-8 (invalid bytes become U+FFFD, as in any JavaScript program),
// so compare only valid UTF-8 text. Encoder.js appends each word's ids with
// Array.concat, quadratic in the length of the text, so the text is encoded in pieces
// cut where GPT-2's regex always ends a pre-token: after a newline that follows a
// non-space and precedes a letter. There "\n" is a pre-token on its own both inside the
// whole text (\s+ of one unit) and at the end of a piece (\s+(?!\S) at the end), and the
// letter starts the next one either way, so the pieces' ids joined are the whole text's.
'use strict';
const fs = require('fs');
const path = require('path');
const [encoderJs, textFile] = process.argv.slice(2);
if (!encoderJs || !textFile) {
  console.error('usage: node gpt2-ref-encode.js ENCODER_JS TEXT_FILE');
  process.exit(2);
}
const { encode } = require(path.resolve(encoderJs));
const text = fs.readFileSync(textFile, 'utf8');
const pieces = text.split(/(?<=\S\n)(?=\p{L})/u);
const out = [];
for (const p of pieces) for (const id of encode(p)) out.push(id);
fs.writeSync(1, out.join('\n') + (out.length ? '\n' : ''));
