package edge

import (
	"errors"
	"io"
	"strconv"
)

// An SSE response is HTTP/1.1 chunked: every comment, heartbeat and event
// goes out as whole chunks, and sseTerminator (the last, empty chunk) ends
// it. These helpers are that encoding; event.go renders events with them,
// and dechunker undoes it for HTTP/2 streams.

// appendChunk appends one HTTP/1.1 chunk.
func appendChunk(dst, p []byte) []byte {
	dst = appendChunkSize(dst, len(p))
	dst = append(dst, p...)
	return append(dst, '\r', '\n')
}

// appendChunkSize appends an HTTP/1.1 chunk's size line.
func appendChunkSize(dst []byte, n int) []byte {
	dst = strconv.AppendUint(dst, uint64(n), 16)
	return append(dst, '\r', '\n')
}

// dechunker turns the chunked bytes of an SSE response back into its body,
// for a transport with framing of its own (HTTP/2): frames are rendered
// once, chunked, for every client, and each HTTP/2 stream writes their
// payload slices. It accepts exactly what appendChunk and sseTerminator
// produce (no chunk extensions, no trailers), split anywhere across
// writes; anything else is an error.
type dechunker struct {
	state  uint8
	digits int // hex digits read of the current size line
	size   int // the chunk's size while its line is read, then the data left
}

const (
	chunkSize   uint8 = iota // reading the size line's hex digits
	chunkSizeLF              // read the size line's CR
	chunkData                // size bytes of data left
	chunkDataCR              // data read, expecting its CR
	chunkDataLF              // then its LF
	chunkLastCR              // read "0\r\n", expecting the final CR
	chunkLastLF              // then the final LF
	chunkEnded               // the last chunk is complete; nothing may follow
)

// maxChunkDigits bounds a size line: no frame comes near 2^28 bytes.
const maxChunkDigits = 7

var errBadChunk = errors.New("edge: malformed chunked frame")

// write decodes p, writing the data it carries to w.
func (d *dechunker) write(p []byte, w io.Writer) error {
	for len(p) > 0 {
		if d.state == chunkData {
			n := min(d.size, len(p))
			if _, err := w.Write(p[:n]); err != nil {
				return err
			}
			p, d.size = p[n:], d.size-n
			if d.size == 0 {
				d.state = chunkDataCR
			}
			continue
		}
		c := p[0]
		p = p[1:]
		switch {
		case d.state == chunkSize && c == '\r' && d.digits > 0:
			d.state = chunkSizeLF
		case d.state == chunkSize && d.digits < maxChunkDigits && hexDigit(c) >= 0:
			d.size = d.size<<4 | hexDigit(c)
			d.digits++
		case d.state == chunkSizeLF && c == '\n' && d.size > 0:
			d.state = chunkData
		case d.state == chunkSizeLF && c == '\n':
			d.state = chunkLastCR
		case d.state == chunkDataCR && c == '\r':
			d.state = chunkDataLF
		case d.state == chunkLastCR && c == '\r':
			d.state = chunkLastLF
		case d.state == chunkDataLF && c == '\n':
			d.state, d.digits, d.size = chunkSize, 0, 0
		case d.state == chunkLastLF && c == '\n':
			d.state = chunkEnded
		default:
			return errBadChunk
		}
	}
	return nil
}

// ended reports whether the last chunk has been decoded: the response is
// complete.
func (d *dechunker) ended() bool { return d.state == chunkEnded }

// hexDigit is the value of a hexadecimal digit, or -1.
func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
