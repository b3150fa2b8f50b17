package keyword

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Text returns the searchable text of a status, as Mastodon computes it once
// per event: spoiler text, content, every poll option title and every media
// description (a missing one as ""), joined with "\n\n"; then `<br>` variants
// become "\n" and "</p><p>" becomes "\n\n"; then the string is parsed as an
// HTML fragment and reduced to its textContent.
//
// The fragment is parsed the way jsdom's JSDOM.fragment does it: as the
// innerHTML of a <template> element, with scripting enabled. textContent then
// concatenates every text node in tree order, so the text inside <script>,
// <style>, <textarea>, <title>, <noscript>, <xmp>, <iframe> and the like is
// included (they are text nodes), while the contents of a nested HTML
// <template> are not (jsdom keeps them in a separate DocumentFragment).
// Comments, tags and attribute values never appear; entities are decoded.
//
// Known divergences from jsdom (parse5), found by differential testing; all
// need markup that Mastodon's sanitizer never emits, so they can only come
// from literal markup typed into poll options or media descriptions:
//   - golang.org/x/net/html refuses more than 512 nested open elements;
//     such input falls back to a tokenizer walk (text tokens in source
//     order, template contents skipped), which differs only if the deep
//     markup also relies on tree rebuilding such as foster parenting;
//   - table foster parenting and column-group text in the template context
//     order or keep text differently ("<table>a<b>c" is "ca" in jsdom);
//   - a raw-text start tag that the tree builder ignores (e.g. <xmp> inside
//     <select>) still switches x/net/html's tokenizer to raw text;
//   - the newline after <pre>/<listing> is dropped even when ignored tokens
//     come between them;
//   - character references inside CDATA sections in <svg>/<math> are
//     decoded, and NULs there are handled differently.
//
// Invalid UTF-8 passes through unchanged where JavaScript would hold
// U+FFFD; the matcher and the JSON output treat such bytes as U+FFFD.
func Text(spoiler, content string, pollOptions, mediaDescriptions []string) string {
	n := len(spoiler) + 2 + len(content)
	for _, s := range pollOptions {
		n += 2 + len(s)
	}
	for _, s := range mediaDescriptions {
		n += 2 + len(s)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(spoiler)
	b.WriteString("\n\n")
	b.WriteString(content)
	for _, s := range pollOptions {
		b.WriteString("\n\n")
		b.WriteString(s)
	}
	for _, s := range mediaDescriptions {
		b.WriteString("\n\n")
		b.WriteString(s)
	}
	joined := replaceBR(b.String())
	joined = strings.ReplaceAll(joined, "</p><p>", "\n\n")
	return textContent(joined)
}

// replaceBR replaces every match of the JS regex /<br\s*\/?>/g with "\n".
func replaceBR(s string) string {
	i := strings.Index(s, "<br")
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		end, ok := matchBRTail(s, i+3)
		if ok {
			b.WriteString(s[:i])
			b.WriteByte('\n')
			s = s[end:]
			i = strings.Index(s, "<br")
			continue
		}
		// No match here; keep the "<" and look further on.
		b.WriteString(s[:i+1])
		s = s[i+1:]
		i = strings.Index(s, "<br")
	}
	b.WriteString(s)
	return b.String()
}

// matchBRTail matches `\s*\/?>` at s[i:]. \s, "/" and ">" are disjoint, so the
// greedy match never needs to backtrack.
func matchBRTail(s string, i int) (int, bool) {
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !isJSSpace(r) {
			break
		}
		i += size
	}
	if i < len(s) && s[i] == '/' {
		i++
	}
	if i < len(s) && s[i] == '>' {
		return i + 1, true
	}
	return 0, false
}

// isJSSpace reports whether r is in JavaScript's \s class (WhiteSpace and
// LineTerminator).
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// textContent parses s as the innerHTML of a <template> (JSDOM.fragment) and
// returns the concatenated text nodes.
func textContent(s string) string {
	// Plain text is its own textContent; only markup, character references,
	// CR (newline normalisation) and NUL (dropped by the parser) change it.
	if !strings.ContainsAny(s, "<&\r\x00") {
		return s
	}
	ctx := &html.Node{Type: html.ElementNode, Data: "template", DataAtom: atom.Template}
	nodes, err := html.ParseFragment(strings.NewReader(s), ctx)
	if err != nil {
		return tokenText(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, n := range nodes {
		appendText(&b, n)
	}
	return b.String()
}

func appendText(b *strings.Builder, n *html.Node) {
	switch n.Type {
	case html.TextNode:
		b.WriteString(n.Data)
		return
	case html.ElementNode:
		// x/net/html keeps an HTML template's contents as its children;
		// the DOM moves them to template.content, outside textContent.
		if n.DataAtom == atom.Template && n.Namespace == "" {
			return
		}
	case html.DocumentNode:
	default:
		return
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		appendText(b, c)
	}
}

// tokenText is the fallback for markup nested too deeply for the tree
// builder: text tokens in source order, skipping <template> contents.
func tokenText(s string) string {
	z := html.NewTokenizerFragment(strings.NewReader(s), "template")
	var b strings.Builder
	b.Grow(len(s))
	depth := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			// A strings.Reader only ever ends with io.EOF.
			return b.String()
		case html.TextToken:
			if depth == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken:
			if name, _ := z.TagName(); string(name) == "template" {
				depth++
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "template" && depth > 0 {
				depth--
			}
		}
	}
}
