'use strict';
// Fenced code blocks of a Markdown document, by the CommonMark rules for fences (the same
// rules as ../python/markdown_blocks.py): a fence is a line indented by at most three spaces
// that starts with at least three backticks or tildes; the first word after it is the language;
// the block ends at a line of the same character, at least as long, indented by at most three
// spaces, with nothing else but spaces; a block never closed runs to the end of the document.
// Container blocks (lists, block quotes) are not looked into.

const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `[{ language, code }]` for every fenced code block of `text`, in document order. */
function fencedBlocks(text) {
  const lines = text.split(/\r\n|\n|\r/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const m = FENCE.exec(lines[i]);
    i += 1;
    if (!m) continue;
    const indent = m[1].length;
    const fence = m[2];
    const info = m[3].trim();
    if (fence[0] === '`' && info.includes('`')) continue; // not a fence
    const closing = new RegExp(`^ {0,3}${escape(fence[0])}{${fence.length},}[ \\t]*$`);
    const body = [];
    while (i < lines.length && !closing.test(lines[i])) {
      const line = lines[i];
      const strip = line.length - line.replace(/^ +/, '').length;
      body.push(line.slice(Math.min(strip, indent)));
      i += 1;
    }
    i += 1; // the closing fence (or past the end)
    blocks.push({
      language: info ? info.split(/\s+/)[0] : '',
      code: body.length ? body.join('\n') + '\n' : '',
    });
  }
  return blocks;
}

/** The code of the one block tagged `language`; throws when there are none or several. */
function onlyBlock(text, language) {
  const found = fencedBlocks(text).filter((b) => b.language === language);
  if (found.length !== 1) {
    throw new Error(`expected exactly one \`\`\`${language} block in the README, found ${found.length}`);
  }
  return found[0].code;
}

module.exports = { fencedBlocks, onlyBlock };
