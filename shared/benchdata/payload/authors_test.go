package payload

import (
	"encoding/json"
	"html"
	"regexp"
	"strings"
	"testing"
)

func TestParseAuthors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Author
		wantErr string
	}{
		{
			name: "local and remote, tabs and spaces, comments",
			in:   "# id\tusername\tacct\n200000000000000001\tbench1\tbench1\n\n200000000900000001  author1  author1@remote1.example\n",
			want: []Author{
				{ID: "200000000000000001", Username: "bench1"},
				{ID: "200000000900000001", Username: "author1", Domain: "remote1.example"},
			},
		},
		{name: "empty", in: "", want: nil},
		{name: "two fields", in: "1\tbench1\n", wantErr: "got 2 fields"},
		{name: "non-numeric id", in: "x1\tbench1\tbench1\n", wantErr: "account id"},
		{name: "zero id", in: "0\tbench1\tbench1\n", wantErr: "account id"},
		{name: "leading zero", in: "01\tbench1\tbench1\n", wantErr: "account id"},
		{name: "signed id", in: "+1\tbench1\tbench1\n", wantErr: "account id"},
		{name: "id overflows bigint", in: "9223372036854775808\ta\ta\n", wantErr: "account id"},
		{name: "acct of another user", in: "1\tbench1\tbench2\n", wantErr: "acct"},
		{name: "empty domain", in: "1\tbench1\tbench1@\n", wantErr: "acct"},
		{name: "two domains", in: "1\tbench1\tbench1@a@b\n", wantErr: "acct"},
		{name: "invalid utf-8", in: "1\ta\xff\ta\xff\n", wantErr: "UTF-8"},
		{name: "username with at", in: "1\ta@b\ta@b\n", wantErr: "username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAuthors(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("author %d: got %+v want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseAuthorsLimit(t *testing.T) {
	var b strings.Builder
	for range MaxAuthors + 1 {
		b.WriteString("1\ta\ta\n")
	}
	if _, err := ParseAuthors(strings.NewReader(b.String())); err == nil {
		t.Fatal("no error for too many authors")
	}
}

type statusAccount struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Acct     string `json:"acct"`
	URL      string `json:"url"`
}

func decodeAccount(t *testing.T, msg []byte) statusAccount {
	t.Helper()
	var st struct {
		Account statusAccount `json:"account"`
	}
	if err := json.Unmarshal(ssePayload(t, msg), &st); err != nil {
		t.Fatal(err)
	}
	return st.Account
}

func TestRotatingGenerator(t *testing.T) {
	local := Author{ID: "200000000000000001", Username: "bench1"}
	remote := Author{ID: "200000000900000001", Username: "author1", Domain: "remote1.example"}
	g := NewRotatingGenerator(DefaultAuthor(), []Author{local, remote}, 3500)
	tests := []struct {
		seq   uint64
		probe bool
		want  statusAccount
	}{
		{seq: 10, want: statusAccount{ID: local.ID, Username: "bench1", Acct: "bench1", URL: "https://social.example/@bench1"}},
		{seq: 11, want: statusAccount{ID: remote.ID, Username: "author1", Acct: "author1@remote1.example", URL: "https://remote1.example/@author1"}},
		{seq: 12, want: statusAccount{ID: local.ID, Username: "bench1", Acct: "bench1", URL: "https://social.example/@bench1"}},
		// Probes stay on the neutral author whatever the sequence number.
		{seq: 11, probe: true, want: statusAccount{ID: DefaultAuthor().ID, Username: "loadtest", Acct: "loadtest", URL: "https://social.example/@loadtest"}},
	}
	for _, tt := range tests {
		msg := g.Append(nil, tt.seq, 1_700_000_000_000_000_000, tt.probe)
		if got := decodeAccount(t, msg); got != tt.want {
			t.Errorf("seq %d probe %v: got %+v want %+v", tt.seq, tt.probe, got, tt.want)
		}
		if len(msg) < 3500-40 || len(msg) > 3500+40 {
			t.Errorf("seq %d: %d bytes, want about 3500", tt.seq, len(msg))
		}
		info, ok := Decode(ssePayload(t, msg))
		if !ok || info.Seq != tt.seq || info.Probe != tt.probe {
			t.Errorf("seq %d: decoded %+v %v", tt.seq, info, ok)
		}
	}
	// Without authors every message is by the probe author.
	if got := decodeAccount(t, NewRotatingGenerator(remote, nil, 0).Append(nil, 3, 1, false)); got.Acct != "author1@remote1.example" {
		t.Errorf("no authors: got %+v", got)
	}
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// TestFilterWordsAppear keeps the fixture generator's keyword list honest:
// the words must be in the text a server searches (spoiler, content
// and media descriptions with tags removed).
func TestFilterWordsAppear(t *testing.T) {
	for _, size := range []int{0, 3500} {
		var st struct {
			Content string `json:"content"`
			Media   []struct {
				Description string `json:"description"`
			} `json:"media_attachments"`
		}
		msg := NewGenerator(DefaultAuthor(), size).Append(nil, 1, 1, false)
		if err := json.Unmarshal(ssePayload(t, msg), &st); err != nil {
			t.Fatal(err)
		}
		text := html.UnescapeString(tagRE.ReplaceAllString(st.Content, " "))
		for _, m := range st.Media {
			text += "\n\n" + m.Description
		}
		text = strings.ToLower(text)
		words := FilterWords()
		if size > 0 {
			words = append(words, PaddingWords()...)
		}
		for _, w := range words {
			if !regexp.MustCompile(`\b` + w + `\b`).MatchString(text) {
				t.Errorf("size %d: %q not in searchable text %q", size, w, text)
			}
		}
	}
}

func FuzzParseAuthors(f *testing.F) {
	f.Add("200000000000000001\tbench1\tbench1\n200000000900000001\tauthor1\tauthor1@remote1.example\n")
	f.Add("# comment\n\n1 a a\n")
	f.Add("1\ta\ta@\n")
	f.Add("99999999999999999999\ta\ta\n")
	f.Fuzz(func(t *testing.T, in string) {
		authors, err := ParseAuthors(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, a := range authors {
			// Whatever parses must render as a decodable status with the
			// same account.
			msg := NewGenerator(a, 0).Append(nil, 1, 2, false)
			if got := decodeAccount(t, msg); got.ID != a.ID || got.Username != a.Username || got.Acct != a.Acct() {
				t.Fatalf("author %+v rendered as %+v", a, got)
			}
		}
	})
}
