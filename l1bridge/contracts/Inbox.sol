// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title mezzanine inbox: batch commitments and state-root pointers on L1.
/// @notice The appliance's poster commits each batch of superblocks (a range of
/// heights, its DA root and one root per namespace) under an expected index,
/// so a re-post after a reorg or a lost receipt either lands at the same index
/// or reverts with WrongIndex: a batch is never posted twice or skipped.
/// Each batch's hash is chained to the previous one.
///
/// State roots are POINTERS ONLY: this contract does not verify any proof.
/// postStateRoot records who claimed which root for which L2 block and where
/// the proof lives (proofKind, proofLocator); verifying it is the reader's job.
contract Inbox {
    // ---------------------------------------------------------------- storage
    // Slot 0 holds everything postBatch reads and writes besides the hash
    // chain, so a batch costs one cold SLOAD and one warm SSTORE for it:
    //   poster (160 bits) | nextHeight (64) | batchCount (32).
    // 2^32 batches is more than a millennium at one batch per L1 block.
    address public poster;
    uint64 public nextHeight;
    uint32 public batchCount;

    address public owner;

    /// batchHash[i] = keccak256(abi.encode(batchHash[i-1] (0 for i = 0), i,
    ///     fromHeight, toHeight, daRoot, namespaceIds, namespaceRoots)).
    mapping(uint64 => bytes32) public batchHash;

    /// Per rollup: the key allowed to post its state roots besides the poster,
    /// and the last L2 block posted (hasRoot tells 0 from "none yet").
    struct Rollup {
        address key;
        uint64 lastL2Block;
        bool hasRoot;
    }
    mapping(uint64 => Rollup) public rollups;

    // ----------------------------------------------------------------- events
    event BatchPosted(
        uint64 indexed index,
        bytes32 indexed batchHash,
        uint64 fromHeight,
        uint64 toHeight,
        bytes32 daRoot,
        uint64[] namespaceIds,
        bytes32[] namespaceRoots
    );
    event StateRootPosted(
        uint64 indexed rollupId,
        uint64 indexed l2Block,
        bytes32 stateRoot,
        uint8 proofKind,
        address sender,
        bytes proofLocator
    );
    event PosterChanged(address indexed previousPoster, address indexed newPoster);
    event RollupKeyChanged(uint64 indexed rollupId, address indexed previousKey, address indexed newKey);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    // ----------------------------------------------------------------- errors
    error NotOwner(address sender);
    error NotPoster(address sender);
    error NotRollupPoster(uint64 rollupId, address sender);
    error ZeroAddress();
    error WrongIndex(uint64 expected, uint64 got);
    error HeightGap(uint64 expected, uint64 got);
    error HeightOverlap(uint64 expected, uint64 got);
    error BadRange(uint64 fromHeight, uint64 toHeight);
    error LengthMismatch(uint256 namespaceIds, uint256 namespaceRoots);
    error NamespacesUnsorted(uint256 position);
    error DuplicateNamespace(uint64 namespaceId);
    error StaleL2Block(uint64 rollupId, uint64 last, uint64 got);

    // ------------------------------------------------------------ constructor
    /// @param poster_ the appliance's posting key.
    /// @param startHeight the fromHeight the first batch must have (0 for a
    ///        new chain; the first height not yet anchored elsewhere for a
    ///        migration).
    constructor(address poster_, uint64 startHeight) {
        owner = msg.sender;
        poster = poster_;
        nextHeight = startHeight;
        emit OwnershipTransferred(address(0), msg.sender);
        emit PosterChanged(address(0), poster_);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- batches
    /// @notice Commit batch `expectedIndex` covering heights [fromHeight, toHeight].
    /// Reverts with WrongIndex if `expectedIndex` is not the next index (in
    /// particular when the same batch was already included: the poster then
    /// reads batchHash(expectedIndex) to confirm), HeightGap/HeightOverlap
    /// unless fromHeight is the previous toHeight + 1 (or the start height),
    /// BadRange if fromHeight > toHeight, LengthMismatch, NamespacesUnsorted or
    /// DuplicateNamespace unless the ids are strictly increasing and paired
    /// one to one with the roots.
    function postBatch(
        uint64 expectedIndex,
        uint64 fromHeight,
        uint64 toHeight,
        bytes32 daRoot,
        uint64[] calldata namespaceIds,
        bytes32[] calldata namespaceRoots
    ) external {
        if (msg.sender != poster) revert NotPoster(msg.sender);
        uint32 count = batchCount;
        if (expectedIndex != count) revert WrongIndex(count, expectedIndex);
        uint64 next = nextHeight;
        if (fromHeight > next) revert HeightGap(next, fromHeight);
        if (fromHeight < next) revert HeightOverlap(next, fromHeight);
        if (fromHeight > toHeight) revert BadRange(fromHeight, toHeight);
        uint256 n = namespaceIds.length;
        if (n != namespaceRoots.length) revert LengthMismatch(n, namespaceRoots.length);
        for (uint256 i = 1; i < n; i++) {
            uint64 a = namespaceIds[i - 1];
            uint64 b = namespaceIds[i];
            if (a == b) revert DuplicateNamespace(b);
            if (a > b) revert NamespacesUnsorted(i);
        }

        bytes32 prev = count == 0 ? bytes32(0) : batchHash[count - 1];
        bytes32 h = keccak256(
            abi.encode(prev, expectedIndex, fromHeight, toHeight, daRoot, namespaceIds, namespaceRoots)
        );
        batchHash[expectedIndex] = h;
        // toHeight + 1 overflows (and reverts) only at 2^64 - 1, a height
        // that cannot be reached; count + 1 likewise at 2^32 batches.
        nextHeight = toHeight + 1;
        batchCount = count + 1;
        emit BatchPosted(expectedIndex, h, fromHeight, toHeight, daRoot, namespaceIds, namespaceRoots);
    }

    // ------------------------------------------------------------ state roots
    /// @notice Record that `stateRoot` is rollup `rollupId`'s state after
    /// `l2Block`, with a pointer to its proof. NOT VERIFIED: the contract only
    /// checks the caller (the poster or the rollup's key) and that l2Block
    /// strictly increases per rollup.
    function postStateRoot(
        uint64 rollupId,
        uint64 l2Block,
        bytes32 stateRoot,
        uint8 proofKind,
        bytes calldata proofLocator
    ) external {
        Rollup storage r = rollups[rollupId];
        if (msg.sender != poster && (msg.sender != r.key || r.key == address(0))) {
            revert NotRollupPoster(rollupId, msg.sender);
        }
        if (r.hasRoot && l2Block <= r.lastL2Block) revert StaleL2Block(rollupId, r.lastL2Block, l2Block);
        r.lastL2Block = l2Block;
        r.hasRoot = true;
        emit StateRootPosted(rollupId, l2Block, stateRoot, proofKind, msg.sender, proofLocator);
    }

    // ------------------------------------------------------------------ admin
    /// @notice Replace the posting key. address(0) pauses posting.
    function setPoster(address newPoster) external onlyOwner {
        emit PosterChanged(poster, newPoster);
        poster = newPoster;
    }

    /// @notice Allow `key` to post state roots for `rollupId` (address(0) revokes).
    function setRollupKey(uint64 rollupId, address key) external onlyOwner {
        Rollup storage r = rollups[rollupId];
        emit RollupKeyChanged(rollupId, r.key, key);
        r.key = key;
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }
}
