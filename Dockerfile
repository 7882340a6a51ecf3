# syntax=docker/dockerfile:1
# Build: docker build -t reservekit .
# Run:   docker run -p 8080:8080 -v reservekit:/data reservekit
#        (SQLite at /data/reservekit.db; set DATABASE_URL=postgres://… for Postgres)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/reservekit ./server && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/reservekit /reservekit
COPY --from=build --chown=65532:65532 /out/data /data
ENV PORT=8080 DATABASE_URL=sqlite:/data/reservekit.db WEBHOOK_SECRET_KEY_FILE=/data/reservekit-webhook.key
VOLUME ["/data"]
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/reservekit"]
