// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title mezzanine inbox: batch commitments and state-root pointers on L1.
/// @notice The appliance's poster commits each batch of superblocks (a range of
/// heights, its DA root and one root per namespace) under an expected index,
/// so a re-post after a reorg or a lost receipt either lands at the same index
/// or reverts with WrongIndex: a batch is never posted twice or skipped.
/// Each batch's hash is chained to the previous one.
///
/// Execution tickets (docs/RIGHTS.md): buyers deposit ETH here, sign
/// EIP-712 Purchase messages off chain, and the appliance posts them
/// (postPurchases), which moves each purchase's price from the buyer's free
/// balance into the sale's escrow. Once the appliance has drawn the winners it
/// posts the sale's settlement (settleSale): escrow becomes refunds for the
/// buyers, revenue for the rollups and a burn. Refunds and revenue are pulled
/// (claimRefund, claimRevenue), never pushed.
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

    // ------------------------------------------------------ ticket balances
    // All amounts on chain are wei; the appliance counts gwei (x 1e9 here).

    /// Deposited and not committed to any purchase: the buyer may withdraw it.
    mapping(address => uint256) public freeBalance;
    /// escrow[saleId][buyer]: paid for purchases in that sale, until settled.
    mapping(uint64 => mapping(address => uint256)) public escrow;
    /// nonceUsed[buyer][nonce]: set once a purchase with that nonce is accepted.
    mapping(address => mapping(uint64 => bool)) public nonceUsed;
    /// Settled refunds a buyer may pull with claimRefund.
    mapping(address => uint256) public claimableRefund;
    /// Settled revenue a rollup's registered key may pull with claimRevenue.
    mapping(uint64 => uint256) public claimableRevenue;
    /// Wei burned by settlements: held by this contract forever (no function
    /// moves it), so burning costs no transfer and cannot fail.
    uint256 public totalBurned;

    /// Per sale: buyers with a non-zero escrow (settleSale must list exactly
    /// these) and whether it is settled.
    struct Sale {
        uint32 buyers;
        bool settled;
    }
    mapping(uint64 => Sale) public sales;

    /// A buyer's signed order for `tickets` tickets on the bundle `rollups`
    /// (ascending rollup ids) at `priceGwei` each. The EIP-712 struct.
    struct Purchase {
        uint64 saleId;
        uint64[] rollups;
        uint64 tickets;
        uint64 priceGwei;
        uint64 nonce;
    }
    struct BuyerSettlement {
        address buyer;
        uint256 charged; // wei: becomes revenue and burn
        uint256 refund; // wei: the buyer pulls it with claimRefund
    }
    struct Credit {
        uint64 rollupId;
        uint256 amount; // wei
    }
    struct Settlement {
        BuyerSettlement[] buyers; // address strictly ascending
        Credit[] credits; // rollupId strictly ascending
        uint256 burn; // wei
    }

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant PURCHASE_TYPEHASH =
        keccak256("Purchase(uint64 saleId,uint64[] rollups,uint64 tickets,uint64 priceGwei,uint64 nonce)");
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    /// PurchaseRejected reasons.
    uint8 public constant REJECT_NONCE_USED = 1;
    uint8 public constant REJECT_UNFUNDED = 2;

    bytes32 private immutable cachedDomainSeparator;
    uint256 private immutable cachedChainId;

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
    event Deposited(address indexed buyer, uint256 amount, uint256 newBalance);
    event Withdrawn(address indexed buyer, uint256 amount, uint256 newBalance);
    event Purchased(
        uint64 indexed saleId, address indexed buyer, uint64 nonce, uint64 tickets, uint64 priceGwei, uint64[] rollups
    );
    event PurchaseRejected(uint64 indexed saleId, address indexed buyer, uint64 nonce, uint8 reason);
    event SaleSettled(uint64 indexed saleId, uint256 revenue, uint256 burn, uint64 nBuyers, uint64 nCredits);
    event RevenueCredited(uint64 indexed saleId, uint64 indexed rollupId, uint256 amount);
    event RefundClaimed(address indexed buyer, uint256 amount);
    event RevenueClaimed(uint64 indexed rollupId, address indexed key, uint256 amount);

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
    error InsufficientBalance(uint256 available, uint256 requested);
    error TransferFailed(address to, uint256 amount);
    error NothingToClaim();
    error NotRollupKey(uint64 rollupId, address sender);
    error SignatureCountMismatch(uint256 purchases, uint256 signatures);
    error WrongSale(uint256 position, uint64 saleId);
    error EmptyPurchase(uint256 position);
    error BadSignature(uint256 position);
    error SaleAlreadySettled(uint64 saleId);
    error BuyersUnsorted(uint256 position);
    error EscrowMismatch(address buyer, uint256 escrow, uint256 listed);
    error BuyerCountMismatch(uint256 expected, uint256 got);
    error CreditsUnsorted(uint256 position);
    error Unbalanced(uint256 charged, uint256 credited, uint256 burn);

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
        cachedChainId = block.chainid;
        cachedDomainSeparator = _domainSeparator();
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

    // ------------------------------------------------------------- balances
    /// @notice Add msg.value to the caller's free balance.
    function deposit() external payable {
        uint256 b = freeBalance[msg.sender] + msg.value;
        freeBalance[msg.sender] = b;
        emit Deposited(msg.sender, msg.value, b);
    }

    /// @notice Take back `amount` wei of the free balance (escrow is not free).
    function withdraw(uint256 amount) external {
        uint256 b = freeBalance[msg.sender];
        if (amount > b) revert InsufficientBalance(b, amount);
        b -= amount;
        freeBalance[msg.sender] = b;
        emit Withdrawn(msg.sender, amount, b);
        _pay(msg.sender, amount);
    }

    // ------------------------------------------------------------- purchases
    /// @notice The EIP-712 domain separator: name "mezzanine", version "1",
    /// this chain, this contract (recomputed if the chain id changes).
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _domainSeparator();
    }

    /// @notice The digest a buyer signs for `p` (eth_signTypedData_v4).
    function purchaseDigest(Purchase calldata p) public view returns (bytes32) {
        bytes32 h = keccak256(
            abi.encode(
                PURCHASE_TYPEHASH, p.saleId, keccak256(abi.encodePacked(p.rollups)), p.tickets, p.priceGwei, p.nonce
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), h));
    }

    /// @notice Commit signed purchases of sale `saleId`. Reverts (the whole
    /// call) on what the appliance must have checked already: a signature that
    /// is not 65 bytes, has v other than 27/28, a high s or recovers no
    /// address; a purchase of another sale or of zero tickets or price; a
    /// settled sale. Skips, with PurchaseRejected, what only the chain can
    /// know: a nonce the buyer used before (REJECT_NONCE_USED) and a free
    /// balance below tickets * priceGwei * 1e9 (REJECT_UNFUNDED, e.g. the buyer
    /// withdrew since the appliance looked), so one buyer cannot block the
    /// others' purchases.
    function postPurchases(uint64 saleId, Purchase[] calldata purchases, bytes[] calldata signatures) external {
        if (msg.sender != poster) revert NotPoster(msg.sender);
        uint256 n = purchases.length;
        if (n != signatures.length) revert SignatureCountMismatch(n, signatures.length);
        Sale storage sale = sales[saleId];
        if (sale.settled) revert SaleAlreadySettled(saleId);
        uint32 buyers = sale.buyers;
        for (uint256 i = 0; i < n; i++) {
            if (_purchase(saleId, purchases[i], signatures[i], i)) buyers++;
        }
        sale.buyers = buyers;
    }

    /// One purchase of postPurchases; true when it made a new buyer of the sale.
    function _purchase(uint64 saleId, Purchase calldata p, bytes calldata sig, uint256 i) private returns (bool) {
        if (p.saleId != saleId) revert WrongSale(i, p.saleId);
        if (p.tickets == 0 || p.priceGwei == 0) revert EmptyPurchase(i);
        address buyer = _recover(purchaseDigest(p), sig, i);
        if (nonceUsed[buyer][p.nonce]) {
            emit PurchaseRejected(saleId, buyer, p.nonce, REJECT_NONCE_USED);
            return false;
        }
        // < 2^64 * 2^64 * 2^30: no overflow in 256 bits
        uint256 amount = uint256(p.tickets) * uint256(p.priceGwei) * 1 gwei;
        uint256 free = freeBalance[buyer];
        if (free < amount) {
            emit PurchaseRejected(saleId, buyer, p.nonce, REJECT_UNFUNDED);
            return false;
        }
        nonceUsed[buyer][p.nonce] = true;
        freeBalance[buyer] = free - amount;
        uint256 e = escrow[saleId][buyer];
        escrow[saleId][buyer] = e + amount;
        emit Purchased(saleId, buyer, p.nonce, p.tickets, p.priceGwei, p.rollups);
        return e == 0;
    }

    // ------------------------------------------------------------ settlement
    /// @notice Close sale `saleId` once: every buyer with escrow in it listed
    /// once (ascending address) with charged + refund == its escrow; credits by
    /// ascending rollup id; sum(charged) == sum(credits) + burn. Refunds and
    /// revenue become claimable; the burn stays here forever. A rollup credited
    /// before its key is registered claims once setRollupKey names one: a
    /// missing key must not make the settlement revert, which would keep every
    /// buyer's escrow of the sale locked.
    function settleSale(uint64 saleId, Settlement calldata st) external {
        if (msg.sender != poster) revert NotPoster(msg.sender);
        Sale storage sale = sales[saleId];
        if (sale.settled) revert SaleAlreadySettled(saleId);
        uint256 nb = st.buyers.length;
        if (nb != sale.buyers) revert BuyerCountMismatch(sale.buyers, nb);
        uint256 charged = _settleBuyers(saleId, st.buyers);
        uint256 credited = _settleCredits(saleId, st.credits);
        if (charged != credited + st.burn) revert Unbalanced(charged, credited, st.burn);
        sale.settled = true;
        totalBurned += st.burn;
        emit SaleSettled(saleId, charged, st.burn, uint64(nb), uint64(st.credits.length));
    }

    function _settleBuyers(uint64 saleId, BuyerSettlement[] calldata b) private returns (uint256 charged) {
        address prev = address(0);
        for (uint256 i = 0; i < b.length; i++) {
            address buyer = b[i].buyer;
            // ascending and distinct; address(0) never has escrow
            if (i > 0 && buyer <= prev) revert BuyersUnsorted(i);
            prev = buyer;
            uint256 e = escrow[saleId][buyer];
            uint256 listed = b[i].charged + b[i].refund;
            // e == 0: not a buyer of this sale (the count check alone would let
            // a listed stranger stand in for an omitted buyer)
            if (e == 0 || e != listed) revert EscrowMismatch(buyer, e, listed);
            escrow[saleId][buyer] = 0;
            claimableRefund[buyer] += b[i].refund;
            charged += b[i].charged;
        }
    }

    function _settleCredits(uint64 saleId, Credit[] calldata c) private returns (uint256 credited) {
        for (uint256 i = 0; i < c.length; i++) {
            uint64 id = c[i].rollupId;
            if (i > 0 && id <= c[i - 1].rollupId) revert CreditsUnsorted(i);
            claimableRevenue[id] += c[i].amount;
            credited += c[i].amount;
            emit RevenueCredited(saleId, id, c[i].amount);
        }
    }

    // ---------------------------------------------------------------- claims
    /// @notice Pay the caller its settled refunds.
    function claimRefund() external {
        uint256 a = claimableRefund[msg.sender];
        if (a == 0) revert NothingToClaim();
        claimableRefund[msg.sender] = 0;
        emit RefundClaimed(msg.sender, a);
        _pay(msg.sender, a);
    }

    /// @notice Pay rollup `rollupId`'s revenue to its registered key (the caller).
    function claimRevenue(uint64 rollupId) external {
        address key = rollups[rollupId].key;
        if (key == address(0) || msg.sender != key) revert NotRollupKey(rollupId, msg.sender);
        uint256 a = claimableRevenue[rollupId];
        if (a == 0) revert NothingToClaim();
        claimableRevenue[rollupId] = 0;
        emit RevenueClaimed(rollupId, key, a);
        _pay(key, a);
    }

    // --------------------------------------------------------------- private
    function _domainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("mezzanine"), keccak256("1"), block.chainid, address(this))
        );
    }

    /// ecrecover with the checks ecrecover lacks: 65 bytes, v 27/28, low s,
    /// a recovered address. Each failure reverts: the appliance checked.
    function _recover(bytes32 digest, bytes calldata sig, uint256 i) private pure returns (address) {
        if (sig.length != 65) revert BadSignature(i);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if ((v != 27 && v != 28) || uint256(s) > HALF_N) revert BadSignature(i);
        address a = ecrecover(digest, v, r, s);
        if (a == address(0)) revert BadSignature(i);
        return a;
    }

    /// Every state change is made before this call (checks-effects-
    /// interactions), so a re-entering recipient finds nothing left to take.
    function _pay(address to, uint256 amount) private {
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
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
