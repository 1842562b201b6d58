# Images for the webhook and the scanner: static binaries on distroless,
# running as the non-root user. Build with `make docker-build`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG BINARY
ENV GOEXPERIMENT=jsonv2 CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w" -o /out/app ./cmd/${BINARY}

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/app /app
USER 65532:65532
ENTRYPOINT ["/app"]
