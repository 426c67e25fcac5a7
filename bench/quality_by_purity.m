% Held-out PAN->MS average precision by how pure each query tile is: the
% fraction of the tile covered by its (majority) class, read from the
% scene's class raster on the MS grid. Run by bench/quality.sh (Octave):
%   octave-cli quality_by_purity.m UNIFIED.mat MODEL.mat ARCHIVE.mat CLASSDIR
% UNIFIED.mat is cmir_train -unified (featuresx, featuresy, labels of every
% tile); MODEL.mat gives TEST_TILES; ARCHIVE.mat gives TILE_SCENE,
% MUL_WINDOW and SCENE_NAMES; CLASSDIR holds NAME.raw + NAME.hdr (ENVI, byte)
% for each scene, NAME being the PAN file's base name with _pan -> _class.
args = argv();
u = load(args{1}); m = load(args{2}, 'TEST_TILES');
a = load(args{3}, 'TILE_SCENE', 'MUL_WINDOW', 'SCENE_NAMES');
t = double(m.TEST_TILES(:)) + 1;
lab = double(u.labels(:)); lab = lab(t);
X = double(u.featuresx(t, :)); Y = double(u.featuresy(t, :));
n = numel(t);
D = sum(X .^ 2, 2) + sum(Y .^ 2, 2)' - 2 * X * Y';
ap = zeros(n, 1);
for q = 1:n
  [~, o] = sort(D(q, :));
  rel = (lab(o) == lab(q))(:);
  ap(q) = sum(cumsum(rel) .* rel ./ (1:n)') / sum(rel);
end
W = double(a.MUL_WINDOW); if size(W, 1) == 4 && size(W, 2) ~= 4, W = W'; end
sc = double(a.TILE_SCENE(:));
frac = zeros(n, 1); rasters = {};
for i = 1:n
  s = sc(t(i));
  if s > numel(rasters) || isempty(rasters{s})
    [~, base] = fileparts(strtrim(char(a.SCENE_NAMES(s, :))));
    name = fullfile(args{4}, strrep(base, '_pan', '_class'));
    hdr = fileread([name '.hdr']);
    w = sscanf(regexp(hdr, 'samples\s*=\s*\d+', 'match'){1}, 'samples = %d');
    h = sscanf(regexp(hdr, 'lines\s*=\s*\d+', 'match'){1}, 'lines = %d');
    f = fopen([name '.raw'], 'r'); rasters{s} = fread(f, [w h], 'uint8=>double')'; fclose(f);
  end
  win = W(t(i), :);
  blk = rasters{s}(win(2) + 1:win(2) + win(4), win(1) + 1:win(1) + win(3));
  frac(i) = mean(blk(:) == lab(i));
end
printf('PAN->MS held-out mAP %.4f over %d queries, by the query tile''s majority fraction:\n', mean(ap), n);
edges = [0 0.5 0.6 0.7 0.8 0.9 1.0001];
for e = 1:numel(edges) - 1
  k = frac >= edges(e) & frac < edges(e + 1);
  if any(k)
    printf('  %.1f-%.1f: %5d queries  mAP %.4f  (AP < 0.5: %d)\n', edges(e), min(edges(e + 1), 1), sum(k), mean(ap(k)), sum(ap(k) < 0.5));
  end
end
