package edge

import "strconv"

// An SSE response is HTTP/1.1 chunked: every comment, heartbeat and event
// goes out as whole chunks, and sseTerminator (the last, empty chunk) ends
// it. These helpers are that encoding; event.go renders events with them.

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
