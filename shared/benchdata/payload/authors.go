package payload

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on an authors file. Every author costs one pre-rendered message
// tail (about -payload-size bytes) for the whole run.
const (
	MaxAuthors    = 10_000
	maxAuthorLine = 4 << 10
)

// FilterWords returns words in the searchable text (content and media
// description) of every generated status, padded or not, so keyword filters
// on them match.
func FilterWords() []string {
	return []string{"spillway", "blobcat", "chart", "latency"}
}

// PaddingWords returns words that appear in a generated status only when it
// is padded (a requested size above MinSize).
func PaddingWords() []string {
	return []string{"lorem", "ipsum", "dolor", "tempor", "magna"}
}

// ParseAuthors reads an authors file: one author per line as
// "account_id<TAB>username<TAB>acct", where acct is the username for a local
// account and username@domain for a remote one. Fields may also be separated
// by spaces. Blank lines and lines starting with '#' are skipped.
func ParseAuthors(r io.Reader) ([]Author, error) {
	var out []Author
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxAuthorLine)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if !utf8.ValidString(sc.Text()) {
			return nil, fmt.Errorf("authors line %d: not UTF-8", line)
		}
		a, err := parseAuthor(f)
		if err != nil {
			return nil, fmt.Errorf("authors line %d: %w", line, err)
		}
		if len(out) == MaxAuthors {
			return nil, fmt.Errorf("more than %d authors", MaxAuthors)
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read authors: %w", err)
	}
	return out, nil
}

func parseAuthor(f []string) (Author, error) {
	if len(f) != 3 {
		return Author{}, fmt.Errorf("want account_id<TAB>username<TAB>acct, got %d fields", len(f))
	}
	id, username, acct := f[0], f[1], f[2]
	// Servers compare ids with bigint columns; reject anything else here
	// rather than have every status dropped by a failing query.
	if n, err := strconv.ParseInt(id, 10, 64); err != nil || n <= 0 || id[0] == '+' || id[0] == '0' {
		return Author{}, fmt.Errorf("account id %q is not a positive 64-bit decimal", id)
	}
	if strings.Contains(username, "@") {
		return Author{}, fmt.Errorf("username %q contains '@'", username)
	}
	if acct == username {
		return Author{ID: id, Username: username}, nil
	}
	domain, ok := strings.CutPrefix(acct, username+"@")
	if !ok || domain == "" || strings.Contains(domain, "@") {
		return Author{}, fmt.Errorf("acct %q is neither %q nor %s@DOMAIN", acct, username, username)
	}
	return Author{ID: id, Username: username, Domain: domain}, nil
}
