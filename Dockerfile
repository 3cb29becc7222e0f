# jetplan: the planner service, executors and the CLI in one image.
#   docker build -t jetplan .
#   docker run --rm jetplan node bin/jetplan.js help

# ---- build: compile TypeScript to dist/ ----
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, dist/ and the bin script ----
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
USER node
# Every process is `node bin/jetplan.js <command>`; compose sets the command per service.
CMD ["node", "bin/jetplan.js", "help"]
