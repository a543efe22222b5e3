# syntax=docker/dockerfile:1
# Build: compile TypeScript and the client bundle, then drop dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Run: only what the server needs, as a non-root user.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=4000
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./package.json
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root bin ./bin
# The image's `node` user (uid 1000); Kubernetes also enforces runAsNonRoot.
USER 1000:1000
EXPOSE 4000
# node directly, not npm: SIGTERM must reach the server to start its drain.
CMD ["node", "dist/main.js"]
