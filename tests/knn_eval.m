function [map, pk] = knn_eval(unified_path, queries, k, out_path)
% KNN_EVAL  Euclidean k-NN retrieval and its metrics on a CMIR unified.mat.
%
%   [map, pk] = knn_eval(UNIFIED, QUERIES, K, OUT)
%
% Reads UNIFIED (a MATLAB .mat file as written by `cmir_train ... -unified
% FILE.mat`: featuresx = N x d PAN codes, featuresy = N x d MS codes, labels =
% N x 1 class numbers 1..C, 0 = unlabelled, or N x C 0/1 flags for multi-label
% data) and ranks the rows of featuresy for each row of featuresx (x->y) by
% true Euclidean distance, sqrt(sum((x - y).^2)), computed in double precision;
% equal distances are ordered by the smaller row index, so every ranking is
% unique.
%
%   QUERIES  0-based rows of featuresx (CMIR's tile ids) whose top-K hits are
%            written to OUT; [] (default) writes none
%   K        hits per query (default 10; at most N)
%   OUT      text file, one line per hit: "query rank index distance", with
%            query and index 0-based and rank 1-based; lines starting with '#'
%            are comments
%
% Whatever QUERIES is, every labelled row of featuresx is then used as a query
% against the whole of featuresy, and the function prints and returns
%   map  mean average precision over the whole database, AP = (1/R) sum_k P(k)
%        rel(k), with R the number of items of featuresy relevant to the query
%        (same class; multi-label: at least one shared label)
%   pk   [P@10 P@20 P@30 P@40 P@50], the precision among the first 10..50 hits
% Queries that are unlabelled or have no relevant item are left out, as
% cmir_eval does, so map and pk(1), pk(2), pk(5) equal cmir_eval's x->y mAP,
% P@10, P@20 and P@50 on the same file.
%
% This is a corrected version of the paper's evaluation: a real Euclidean
% distance (not a per-dimension sqrt(d)*d), and mAP over the whole ranking
% of every query rather than the mean of P@10..P@50 over 50 queries.
%
% Runs under GNU Octave and MATLAB, e.g.
%   octave-cli --norc --no-history --eval "addpath('tests'); knn_eval('unified.mat', 0:4, 10, 'hits.txt')"

if nargin < 2
    queries = [];
end
if nargin < 3 || isempty(k)
    k = 10;
end
if nargin < 4
    out_path = '';
end

S = load(unified_path);
need = {'featuresx', 'featuresy', 'labels'};
for i = 1:numel(need)
    if ~isfield(S, need{i})
        error('knn_eval:format', '%s: no variable %s', unified_path, need{i});
    end
end
X = double(S.featuresx);
Y = double(S.featuresy);
L = double(S.labels);
N = size(X, 1);
if ndims(X) ~= 2 || ~isequal(size(X), size(Y))
    error('knn_eval:format', '%s: featuresx and featuresy must be matrices of the same size', unified_path);
end
if isvector(L) && numel(L) == N
    L = L(:);
end
if size(L, 1) ~= N
    error('knn_eval:format', '%s: labels must have one row per item', unified_path);
end
multi = size(L, 2) > 1;
k = min(k, N);

% the hits of the given queries
queries = queries(:)';
if any(queries < 0 | queries >= N | queries ~= fix(queries))
    error('knn_eval:query', 'queries must be 0-based row numbers below %d', N);
end
if ~isempty(out_path)
    fid = fopen(out_path, 'w');
    if fid < 0
        error('knn_eval:io', 'cannot write %s', out_path);
    end
    fprintf(fid, '# knn_eval %s: x->y, Euclidean, N = %d, d = %d, k = %d\n', unified_path, N, size(X, 2), k);
    fprintf(fid, '# query rank index distance\n');
    for q = queries
        [order, dist] = ranking(X(q + 1, :), Y);
        for r = 1:k
            fprintf(fid, '%d %d %d %.17g\n', q, r, order(r) - 1, dist(r));
        end
    end
    fclose(fid);
end

% whole-database metrics, x->y
cut = [10 20 30 40 50];
ap_sum = 0;
pk_sum = zeros(1, numel(cut));
nq = 0;
n_unlabelled = 0;
n_no_relevant = 0;
for q = 1:N
    if multi
        labelled = any(L(q, :));
    else
        labelled = L(q) > 0;
    end
    if ~labelled
        n_unlabelled = n_unlabelled + 1;
        continue;
    end
    order = ranking(X(q, :), Y);
    if multi
        rel = any(bsxfun(@and, L(order, :) ~= 0, L(q, :) ~= 0), 2);
    else
        rel = L(order) == L(q);
    end
    R = sum(rel);
    if R == 0
        n_no_relevant = n_no_relevant + 1;
        continue;
    end
    hits = cumsum(rel);
    prec = hits ./ (1:N)';
    ap_sum = ap_sum + sum(prec(rel)) / R;
    for c = 1:numel(cut)
        pk_sum(c) = pk_sum(c) + hits(min(cut(c), N)) / cut(c);
    end
    nq = nq + 1;
end
if nq > 0
    map = ap_sum / nq;
    pk = pk_sum / nq;
else
    map = NaN;
    pk = NaN(1, numel(cut));
end
fprintf('knn_eval: %s: %d items, d = %d, x->y (featuresx -> featuresy), Euclidean\n', unified_path, N, size(X, 2));
fprintf('queries %d (unlabelled %d, no relevant item %d)\n', nq, n_unlabelled, n_no_relevant);
fprintf('mAP %.9f\n', map);
for c = 1:numel(cut)
    fprintf('P@%d %.9f\n', cut(c), pk(c));
end
end

function [order, dist] = ranking(x, Y)
% Rows of Y by Euclidean distance to x, ties by the smaller row index.
dist = sqrt(sum(bsxfun(@minus, Y, x) .^ 2, 2));
n = size(Y, 1);
sorted = sortrows([dist, (1:n)']);
dist = sorted(:, 1);
order = sorted(:, 2);
end
