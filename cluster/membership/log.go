package membership

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// newStdLogger returns a *log.Logger whose lines become slog records on logger.
// memberlist writes "[LEVEL] memberlist: message"; the level picks the slog level.
func newStdLogger(logger *slog.Logger) *log.Logger {
	return log.New(&slogWriter{logger: logger}, "", 0)
}

type slogWriter struct{ logger *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		msg := strings.TrimSpace(string(line))
		if msg == "" {
			continue
		}
		level := slog.LevelInfo
		if strings.HasPrefix(msg, "[") {
			if i := strings.IndexByte(msg, ']'); i > 0 {
				switch msg[1:i] {
				case "DEBUG", "TRACE":
					level = slog.LevelDebug
				case "WARN":
					level = slog.LevelWarn
				case "ERR", "ERROR":
					level = slog.LevelError
				}
				msg = strings.TrimSpace(msg[i+1:])
			}
		}
		msg = strings.TrimPrefix(msg, "memberlist: ")
		if w.logger.Enabled(context.Background(), level) {
			w.logger.Log(context.Background(), level, msg)
		}
	}
	return len(p), nil
}
