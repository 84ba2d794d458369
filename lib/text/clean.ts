/**
 * PixArt's prompt preprocessing (the DeepFloyd-IF caption cleaner that PixArt-alpha's reference
 * and diffusers' pipeline run before tokenizing): URL, HTML, @handle, CJK, file-name, id and
 * shop-speak removal, dash and quote unification, lower case, whitespace collapsed; applied
 * twice, as the reference does. Without cleaning the prompt is only lower-cased and stripped
 * (also as the reference does).
 *
 * Written for JavaScript regular expressions: Python's Unicode-aware \w, \d, \s and \b are
 * spelled out (WORD, DIGIT, SPACE, wordBoundary) so that they match what Python's `re` matches.
 * Two library calls of the reference are approximated: BeautifulSoup's text extraction (tags
 * and comments removed, entities decoded) and ftfy.fix_text (ligatures, full-width characters,
 * curly quotes, line breaks, control characters, terminal escapes, NFC; ftfy's repair of
 * mis-decoded text, "mojibake", is not done).
 */

const WORD = String.raw`[\p{L}\p{N}_]`;
const NOT_WORD = String.raw`[^\p{L}\p{N}_]`;
const DIGIT = String.raw`\p{Nd}`;
const NOT_DIGIT = String.raw`[^\p{Nd}]`;
const SPACE_CHARS = String.raw` \t\n\r\f\v\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;
const SPACE = `[${SPACE_CHARS}]`;
const NOT_SPACE = `[^${SPACE_CHARS}]`;
/** Python's \b: between a word character and a non-word character (or the text's ends). */
const B = `(?:(?<=${WORD})(?!${WORD})|(?<!${WORD})(?=${WORD}))`;

const IN_CLASS: Record<string, string> = { w: String.raw`\p{L}\p{N}_`, d: String.raw`\p{Nd}`, s: SPACE_CHARS };
const OUTSIDE: Record<string, string> = { w: WORD, W: NOT_WORD, d: DIGIT, D: NOT_DIGIT, s: SPACE, S: NOT_SPACE, b: B };

/** Python regex shorthands (\w \W \d \D \s \S \b) -> JavaScript with the u flag, in and out of classes. */
function py(pattern: string): RegExp {
  let out = "", inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      const n = pattern[i + 1];
      i++;
      if (inClass && n in IN_CLASS) out += IN_CLASS[n];
      else if (inClass && (n === "S" || n === "W")) {
        // only as the whole class: [\S] and [\w\W]
        throw new Error(`internal: \\${n} inside a character class of ${pattern}`);
      } else if (!inClass && n in OUTSIDE) out += OUTSIDE[n];
      else if (/[0-9A-Za-z]/.test(n) || "^$\\.*+?()[]{}|/-".includes(n)) out += c + n;
      else out += n; // Python's identity escapes (\" \' \: \_) are errors under the u flag
    } else {
      if (c === "[" && !inClass) inClass = true;
      else if (c === "]" && inClass) inClass = false;
      out += c;
    }
  }
  return new RegExp(out, "gu");
}

type Rule = [RegExp, string];

const URL_RULES: Rule[] = [
  [py(String.raw`\b((?:https?:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))`), ""],
  [py(String.raw`\b((?:www:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))`), ""],
];

const BAD_PUNCT = String.raw`[#®•©™&@·º½¾¿¡§~\)\(\]\[\}\{\|\\\/\*]{1,}`;

/** Rules between the HTML step and the hyphen count. */
const RULES_A: Rule[] = [
  [py(String.raw`@[\w\d]+\b`), ""],
  // CJK strokes, katakana extensions, enclosed letters, compatibility, ideographs (ext. A, hexagrams, unified)
  [py(String.raw`[\u31c0-\u31ef]+`), ""],
  [py(String.raw`[\u31f0-\u31ff]+`), ""],
  [py(String.raw`[\u3200-\u32ff]+`), ""],
  [py(String.raw`[\u3300-\u33ff]+`), ""],
  [py(String.raw`[\u3400-\u4dbf]+`), ""],
  [py(String.raw`[\u4dc0-\u4dff]+`), ""],
  [py(String.raw`[\u4e00-\u9fff]+`), ""],
  // every dash -> "-"
  [
    py(
      String
        .raw`[\u002D\u058A\u05BE\u1400\u1806\u2010-\u2015\u2E17\u2E1A\u2E3A\u2E3B\u2E40\u301C\u3030\u30A0\uFE31\uFE32\uFE58\uFE63\uFF0D]+`,
    ),
    "-",
  ],
  [py("[`´«»“”¨]"), '"'],
  [py("[‘’]"), "'"],
  [py("&quot;?"), ""],
  [py("&amp"), ""],
  [py(String.raw`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`), " "], // IP addresses
  [py(String.raw`\d:\d\d\s+$`), ""], // article ids
  [py(String.raw`\\n`), " "], // a literal backslash-n
  [py(String.raw`#\d{1,3}\b`), ""],
  [py(String.raw`#\d{5,}\b`), ""],
  [py(String.raw`\b\d{6,}\b`), ""],
  [py(String.raw`\S+\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)`), ""], // file names ([\S]+ in the reference)
  [py(String.raw`[\"\']{2,}`), '"'],
  [py(String.raw`[\.]{2,}`), " "],
  [py(BAD_PUNCT), " "],
  [py(String.raw`\s+\.\s+`), " "],
];

const RULES_B: Rule[] = [
  [py(String.raw`\b[a-zA-Z]{1,3}\d{3,15}\b`), ""], // jc6640
  [py(String.raw`\b[a-zA-Z]+\d+[a-zA-Z]+\b`), ""], // jc6640vc
  [py(String.raw`\b\d+[a-zA-Z]+\d+\b`), ""], // 6640vc231
  [py(String.raw`(worldwide\s+)?(free\s+)?shipping`), ""],
  [py(String.raw`(free\s)?download(\sfree)?`), ""],
  [py(String.raw`\bclick\b\s(?:for|on)\s\w+`), ""],
  [py(String.raw`\b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(\simage[s]?)?`), ""],
  [py(String.raw`\bpage\s+\d+\b`), ""],
  [py(String.raw`\b\d*[a-zA-Z]+\d+[a-zA-Z]+\d+[a-zA-Z\d]*\b`), " "], // j2d1a2a...
  [py(String.raw`\b\d+\.?\d*[xх×]\d+\.?\d*\b`), ""], // sizes, 1920x1080
  [py(String.raw`\b\s+\:\s+`), ": "],
  [py(String.raw`(\D[,\./])\b`), "$1 "],
  [py(String.raw`\s+`), " "],
  [py(String.raw`^[\"\']([^]+)[\"\']$`), "$1"], // ([\w\W]+) in the reference
  [py(String.raw`^[\'\_,\-\:;]`), ""],
  [py(String.raw`[\'\_,\-\:\-\+]$`), ""],
  [py(String.raw`^\.\S+$`), ""],
];

const HYPHENS = /[-_]/g;

/** What PixArt feeds its tokenizer: cleaned twice, or (without cleaning) lower-cased and stripped. */
export function preprocessPrompt(text: string, clean = true): string {
  return clean ? cleanCaption(cleanCaption(text)) : pyStrip(text.toLowerCase());
}

/** One pass of the caption cleaner. */
export function cleanCaption(input: string): string {
  let s = pyStrip(unquotePlus(input)).toLowerCase();
  s = s.replaceAll("<person>", "person");
  s = applyRules(s, URL_RULES);
  s = htmlText(s);
  s = applyRules(s, RULES_A);
  // this-is-my-cute-cat / this_is_my_cute_cat
  if ((s.match(HYPHENS) ?? []).length > 3) s = s.replace(HYPHENS, " ");
  s = fixText(s);
  s = unescapeHtml(unescapeHtml(s));
  s = applyRules(s, RULES_B);
  return pyStrip(s);
}

function applyRules(s: string, rules: Rule[]): string {
  for (const [re, to] of rules) s = s.replace(re, to);
  return s;
}

const STRIP = new RegExp(`^${SPACE}+|${SPACE}+$`, "gu");

/** Python's str.strip(): Python's whitespace set, which differs from String.prototype.trim's. */
function pyStrip(s: string): string {
  return s.replace(STRIP, "");
}

/** urllib.parse.unquote_plus: "+" -> space, %XX runs decoded as UTF-8 (invalid bytes -> U+FFFD). */
export function unquotePlus(s: string): string {
  return s.replace(/\+/g, " ").replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    const bytes = Uint8Array.from(run.slice(1).split("%"), (h) => parseInt(h, 16));
    return new TextDecoder("utf-8").decode(bytes);
  });
}

/** BeautifulSoup(s, "html.parser").text, approximately: comments and tags out, entities decoded. */
function htmlText(s: string): string {
  return unescapeHtml(s.replace(/<!--[\s\S]*?(?:-->|$)/g, "").replace(/<\/?[a-zA-Z][^>]*>/g, ""));
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
  copy: "©",
  reg: "®",
  trade: "™",
  hellip: "…",
  mdash: "—",
  ndash: "–",
  lsquo: "‘",
  rsquo: "’",
  ldquo: "“",
  rdquo: "”",
  laquo: "«",
  raquo: "»",
  deg: "°",
  times: "×",
  middot: "·",
  bull: "•",
  euro: "€",
  pound: "£",
  yen: "¥",
  cent: "¢",
  sect: "§",
  para: "¶",
  frac12: "½",
  frac14: "¼",
  frac34: "¾",
  iexcl: "¡",
  iquest: "¿",
};

// HTML's Latin-1 letter entities (&eacute; &ntilde; &ccedil; ...): base letter + accent name.
const ACCENTS: Record<string, string> = {
  acute: "\u0301",
  grave: "\u0300",
  circ: "\u0302",
  uml: "\u0308",
  tilde: "\u0303",
  ring: "\u030a",
  cedil: "\u0327",
};
for (const base of "aeiouycnAEIOUYCN") {
  for (const [name, mark] of Object.entries(ACCENTS)) {
    const c = (base + mark).normalize("NFC");
    if (c.length === 1 && c.charCodeAt(0) >= 0xc0 && c.charCodeAt(0) <= 0xff) NAMED_ENTITIES[base + name] = c;
  }
}
Object.assign(NAMED_ENTITIES, { szlig: "ß", eth: "ð", ETH: "Ð", thorn: "þ", THORN: "Þ", aelig: "æ", AElig: "Æ", oslash: "ø", Oslash: "Ø" });

/** html.unescape for numeric references and the common named ones (with or without the ";"). */
export function unescapeHtml(s: string): string {
  return s.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);?/g, (m, body: string) => {
    if (body[0] === "#") {
      const code = body[1] === "x" || body[1] === "X" ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      if (!Number.isFinite(code) || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
      return code === 0 ? "\ufffd" : String.fromCodePoint(code);
    }
    const named = NAMED_ENTITIES[body];
    return named !== undefined && (m.endsWith(";") || ["amp", "lt", "gt", "quot", "nbsp", "copy", "reg"].includes(body)) ? named : m;
  });
}

const LIGATURES: Record<string, string> = {
  "ﬀ": "ff",
  "ﬁ": "fi",
  "ﬂ": "fl",
  "ﬃ": "ffi",
  "ﬄ": "ffl",
  "ﬅ": "ſt",
  "ﬆ": "st",
  "Ĳ": "IJ",
  "ĳ": "ij",
};

/** The parts of ftfy.fix_text that apply to prompts typed or pasted as text (see the file comment). */
export function fixText(s: string): string {
  return s
    // deno-lint-ignore no-control-regex
    .replace(/\x1b\[[0-9;]*[a-zA-Z]/g, "") // terminal escapes
    .replace(/[ﬀ-ﬆĲĳ]/g, (c) => LIGATURES[c] ?? c)
    .replace(/[\uff01-\uff5e]/g, (c) => c.normalize("NFKC")) // full-width ASCII
    .replace(/\u3000/g, " ")
    .replace(/[‘’‚‛]/g, "'")
    .replace(/[“”„‟]/g, '"')
    .replace(/\r\n|[\r\u2028\u2029\x85]/g, "\n")
    // deno-lint-ignore no-control-regex
    .replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\ufeff]/g, "")
    .normalize("NFC");
}
