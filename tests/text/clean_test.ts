/**
 * PixArt's caption cleaning (lib/text/clean.ts) against the reference cleaner: each expected
 * string below is the output of diffusers' `_clean_caption` applied twice (BeautifulSoup from
 * Debian's python3-bs4; ftfy is not packaged here, so the cases avoid what only ftfy changes),
 * and the ftfy subset separately.
 */
import { strict as assert } from "node:assert";
import { cleanCaption, fixText, preprocessPrompt, unquotePlus } from "../../lib/text/clean.ts";

const REFERENCE: [string, string][] = [
  ["A small cactus with a happy face in the Sahara desert.", "a small cactus with a happy face in the sahara desert."],
  ["Check https://example.com/cat.png and www.foo.org now!!!", "check and now!!!"],
  ["<b>Bold</b> &amp; beautiful @artist123 portrait", "bold beautiful portrait"],
  ["this-is-my-cute-cat_photo", "this is my cute cat photo"],
  ["“Curly” quotes — and dashes – here", '"curly" quotes - and dashes - here'],
  ["FREE SHIPPING worldwide! click for details, page 3", "worldwide!"],
  ["A photo 1920x1080 of jc6640 item #12 and 1234567", "a photo of item and"],
  ["hello%20world+again", "hello world again"],
  ['"quoted prompt"', "quoted prompt"],
  ["漢字 cat and かな", "cat and かな"],
  ["", ""],
  ["   ", ""],
  ["price: 3.5 , 4,5 ... ok. x.y", "price: 3.5 , 4,5 ok. x. y"],
  ["IP 192.168.0.1 at 10:30  ", "ip at 10:30"],
  ["café naïve ÜBER straße İstanbul", "café naïve über straße i̇stanbul"],
  ["emoji 🐱 test *** ### ~~~ (brackets) [x] {y} |pipe| back\\slash", "emoji 🐱 test brackets x y pipe back slash"],
  ["snake_case_name here and a_b", "snake_case_name here and a_b"],
  ["file name photo_01.JPG and IMG_1234.jpeg done", "file name and done"],
  ["a\\nb literal backslash n", "a b literal backslash n"],
  ["download free wallpapers 4k, free download", "wallpapers 4k"],
  ["The year 2023 was 12345 and #123456", "the year 2023 was 12345 and"],
  [".hidden", ""],
  ["'single-quoted'", "single-quoted"],
  ["mix: a:b , c ; d", "mix: a:b , c ; d"],
  ["x × 2 3x4 5.5x6.5 7х8", "x × 2 5 5"],
  ["&lt;tag&gt; and &quot;entity&quot; &#39;apos&#39; &eacute;", "and \"entity\" 'apos' é"],
  ["Numbers: 0 1 2 3 4 5 6 7 8 9 10", "numbers: 0 1 2 3 4 5 6 7 8 9 10"],
  ["ünïcödé ÀÉÎÕÜ ÿ", "ünïcödé àéîõü ÿ"],
];

Deno.test("caption cleaning matches the reference cleaner on URLs, HTML, handles, CJK, ids, sizes, punctuation", () => {
  for (const [input, expected] of REFERENCE) assert.equal(preprocessPrompt(input), expected, JSON.stringify(input));
});

Deno.test("without cleaning a prompt is only lower-cased and stripped, as the reference does", () => {
  assert.equal(preprocessPrompt("  A Cat @home https://x.com  ", false), "a cat @home https://x.com");
});

Deno.test("one cleaning pass is not idempotent, which is why the reference runs two", () => {
  const once = cleanCaption("FREE SHIPPING worldwide! click for details, page 3");
  assert.notEqual(once, cleanCaption(once));
});

Deno.test("the ftfy subset: ligatures, full-width characters, curly quotes, control characters, NFC", () => {
  assert.equal(fixText("ﬁne ﬂow Ｆｕｌｌ\u3000ｗｉｄｔｈ “q” ‘s’ a\u0007b e\u0301"), "fine flow Full width \"q\" 's' ab é");
  assert.equal(unquotePlus("a+b%20c%E2%82%AC%zz"), "a b c€%zz");
});
