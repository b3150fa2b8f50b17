package keyword

import (
	"strings"
	"testing"
)

// Expected values were checked against jsdom 25 (JSDOM.fragment(...).textContent)
// after Mastodon's own join and replacements.
func TestText(t *testing.T) {
	tests := []struct {
		name    string
		spoiler string
		content string
		opts    []string
		descs   []string
		want    string
	}{
		{name: "content only", content: "<p>hello</p>", want: "\n\nhello"},
		{name: "join order", spoiler: "cw", content: "<p>x</p>", opts: []string{"o1", "o2"}, descs: []string{"d1", ""},
			want: "cw\n\nx\n\no1\n\no2\n\nd1\n\n"},
		{name: "br variants", content: "a<br>b<br/>c<br />d<br\t\n/>e", want: "\n\na\nb\nc\nd\ne"},
		{name: "br js whitespace", content: "a<br\u00a0/>b<br\u3000>c", want: "\n\na\nb\nc"},
		{name: "BR uppercase stays a tag", content: "a<BR>b", want: "\n\nab"},
		{name: "br with attribute", content: "a<br class=x>b", want: "\n\nab"},
		{name: "paragraphs", content: "<p>one</p><p>two</p>", want: "\n\none\n\ntwo"},
		{name: "paragraphs with attributes", content: "<p>one</p><p class=\"x\">two</p>", want: "\n\nonetwo"},
		{name: "entities", content: "<p>a &amp; b &lt;c&gt; &quot;d&quot; &#128; &notit; &#0;</p>", want: "\n\na & b <c> \"d\" € ¬it; \uFFFD"},
		{name: "href not searched", content: `<p><a href="https://example.com/spoiler" class="mention">@bob</a> hi</p>`, want: "\n\n@bob hi"},
		{name: "inline tags add nothing", content: "foo<span>bar</span>", want: "\n\nfoobar"},
		{name: "comments", content: "a<!-- spoiler -->b", want: "\n\nab"},
		{name: "script text kept", content: "<script>a<b>c</script>d", want: "\n\na<b>cd"},
		{name: "style text kept", content: "<style>s</style>t", want: "\n\nst"},
		{name: "template content dropped", content: "<template>t<b>u</b></template>v", want: "\n\nv"},
		{name: "noscript raw with scripting", content: "<noscript><b>x</b></noscript>", want: "\n\n<b>x</b>"},
		{name: "textarea rcdata", content: "<textarea>&amp;<b></textarea>", want: "\n\n&<b>"},
		{name: "cr normalised", content: "a\r\nb\rc", want: "\n\na\nb\nc"},
		{name: "nul dropped", content: "a\x00b", want: "\n\nab"},
		{name: "cdata in svg", content: "<svg><![CDATA[cd]]></svg>", want: "\n\ncd"},
		{name: "cdata outside foreign is a comment", content: "<![CDATA[cd]]>x", want: "\n\nx"},
		{name: "alt text markup parsed", descs: []string{"a <b>bold</b> & <3"}, want: "\n\n\n\na bold & <3"},
		{name: "plain fast path", spoiler: "plain", content: "text", want: "plain\n\ntext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.spoiler, tt.content, tt.opts, tt.descs); got != tt.want {
				t.Errorf("Text() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReplaceBR(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"<br", "<br"},
		{"<br /", "<br /"},
		{"<br //>", "<br //>"},
		{"<br<br>", "<br\n"},
		{"<br  \n />x<br>", "\nx\n"},
		{"<bra>", "<bra>"},
	}
	for _, tt := range tests {
		if got := replaceBR(tt.in); got != tt.want {
			t.Errorf("replaceBR(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTextDeepNesting(t *testing.T) {
	// x/net/html rejects more than 512 open elements; jsdom does not.
	content := strings.Repeat("<span>", 600) + "deep<template>x</template>" + strings.Repeat("</span>", 600)
	if got := Text("", content, nil, nil); got != "\n\ndeep" {
		t.Errorf("Text() = %q", got)
	}
}

func FuzzText(f *testing.F) {
	f.Add("cw", `<p>Hello <a href="https://example.com/tags/x" class="mention hashtag" rel="tag">#<span>x</span></a><br />line</p><p>next &amp; more</p>`, "option", "alt text")
	f.Add("", "<table>a<tr>b<td>c</td></tr>d</table>e", "<select><xmp><a", "<pre></x>\nq")
	f.Add("", "<svg><![CDATA[&amp;]]></svg><math><mi>x", "\x00\r\n", "<template><template>x")
	f.Fuzz(func(t *testing.T, spoiler, content, opt, desc string) {
		_ = Text(spoiler, content, []string{opt}, []string{desc})
	})
}

func BenchmarkText(b *testing.B) {
	content := realisticContent()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		_ = Text("", content, nil, []string{"A cat sitting on a keyboard"})
	}
}

// realisticContent is ~3.5 KB of status HTML as Mastodon renders it.
func realisticContent() string {
	para := `<p>Just finished reading the new release notes &amp; I have thoughts. ` +
		`<a href="https://example.social/@alice" class="u-url mention">@<span>alice</span></a> ` +
		`were you at the meetup? <a href="https://example.social/tags/fediverse" class="mention hashtag" rel="tag">#<span>fediverse</span></a>` +
		`<br />Link: <a href="https://example.org/a/very/long/path" rel="nofollow noopener" target="_blank">` +
		`<span class="invisible">https://</span><span class="ellipsis">example.org/a/very/lo</span><span class="invisible">ng/path</span></a></p>`
	var b strings.Builder
	for b.Len() < 3500 {
		b.WriteString(para)
	}
	return b.String()
}
